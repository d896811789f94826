rule pack:
    input:
        subset="results/data/subset.json",
        semantic=per_city("results/labels/semantic/{split}/{city}"),
        instance=per_city("results/labels/instance/{split}/{city}"),
        flow=per_city("results/flow/{split}/{city}.h5"),
    output:
        data="results/data/{split}.h5",
    log:
        "logs/pack/{split}.log",
    benchmark:
        "results/timing/pack/{split}.tsv"
    params:
        frames_root=DATA_ROOT,
        settings=stage_settings(pack_settings),
        code=code_version("pipeline.pack"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.pack --subset {input.subset} --split {wildcards.split}"
        " --frames-root {params.frames_root} --semantic {input.semantic} --instance {input.instance}"
        " --flow {input.flow} --output {output.data} --threads {threads} --settings {params.settings:q}"
        " > {log} 2>&1"
