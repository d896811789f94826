rule synthetic_city:
    output:
        directory(config["data"]["synthetic_root"]),
    log:
        "logs/synthetic_city.log",
    benchmark:
        "results/timing/synthetic_city.tsv"
    params:
        settings=stage_settings(synthetic_settings),
        code=code_version("pipeline.data.synthetic"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.data.synthetic --root {output} --settings {params.settings:q} > {log} 2>&1"


checkpoint select_subset:
    input:
        root=data_root_input,
    output:
        subset="results/data/subset.json",
    log:
        "logs/select_subset.log",
    benchmark:
        "results/timing/select_subset.tsv"
    params:
        root=DATA_ROOT,
        frames=config["data"]["frames_per_snippet"],
        annotated=config["data"]["annotated_frame"],
        settings=stage_settings(subset_settings),
        code=code_version("pipeline.data.subset"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.data.subset --root {params.root} --output {output.subset}"
        " --frames {params.frames} --annotated-index {params.annotated}"
        " --settings {params.settings:q} > {log} 2>&1"
