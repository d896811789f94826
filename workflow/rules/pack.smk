rule pack:
    input:
        subset="results/data/subset/{split}.json",
        root=data_root_input,
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
        settings=stage_settings(pack_settings),
        code=code_version("pipeline.pack"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        # Where the dataset is: a resource, which Snakemake does not compare (select_subset tracks it;
        # input root: a rebuilt synthetic city reruns this too).
        frames_root=DATA_ROOT,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.pack --subset {input.subset} --split {wildcards.split}"
        " --frames-root {resources.frames_root:q} --semantic {input.semantic} --instance {input.instance}"
        " --flow {input.flow} --output {output.data} --threads {threads} --settings {params.settings:q}"
        " > {log} 2>&1"


# The image variants' training set: the annotated frame of every train snippet with its gtFine
# labels (thesis 4.5.1: "the labelled image dataset ... in the given form"); no label or flow stage.
rule pack_gtfine:
    input:
        subset="results/data/subset/gtfine_train.json",
        root=data_root_input,
    output:
        data="results/data/gtfine_train.h5",
    log:
        "logs/pack/gtfine_train.log",
    benchmark:
        "results/timing/pack/gtfine_train.tsv"
    params:
        settings=stage_settings(pack_settings),
        code=code_version("pipeline.pack"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        # Where the dataset is: a resource, which Snakemake does not compare (select_subset tracks it;
        # input root: a rebuilt synthetic city reruns this too).
        frames_root=DATA_ROOT,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.pack --subset {input.subset} --split gtfine_train --frames-root {resources.frames_root:q}"
        " --output {output.data} --threads {threads} --settings {params.settings:q} > {log} 2>&1"
