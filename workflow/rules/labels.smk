rule fit_segmenter:
    input:
        subset="results/data/subset/gtfine_train.json",
        root=data_root_input,
    output:
        model="results/models/segmenter.pt",
    log:
        "logs/fit_segmenter.log",
    benchmark:
        "results/timing/fit_segmenter.tsv"
    params:
        settings=labeller_fit_settings("semantic"),
        code=code_version("pipeline.labels.fit_segmenter"),
        # Not a declared output: Snakemake would delete it before a resubmitted job starts.
        resume="results/resume/fit_segmenter",
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=720,
        # How often the resume state is saved: training's interval (train.checkpoint_minutes). A
        # resource, not a param, so a change reruns nothing; a string, as Snakemake rounds numbers.
        checkpoint_minutes=str(config["train"]["checkpoint_minutes"]),
        # Where the dataset is: a resource, which Snakemake does not compare (select_subset tracks it;
        # input root: a rebuilt synthetic city reruns this too).
        frames_root=DATA_ROOT,
    # At the walltime (runtime, 12 h on Lengau) the fit saves and exits 143, and a retry goes on
    # from the saved state: as many retries as training's (train.retries).
    retries: config["train"]["retries"]
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.labels.fit_segmenter --subset {input.subset} --frames-root {resources.frames_root:q}"
        " --output {output.model} --resume {params.resume} --checkpoint-minutes {resources.checkpoint_minutes}"
        " --settings {params.settings:q} >> {log} 2>&1"


rule fit_instances:
    input:
        subset="results/data/subset/gtfine_train.json",
        root=data_root_input,
    output:
        model="results/models/instances.pt",
    log:
        "logs/fit_instances.log",
    benchmark:
        "results/timing/fit_instances.tsv"
    params:
        settings=labeller_fit_settings("instance"),
        code=code_version("pipeline.labels.fit_instances"),
        # Not a declared output: Snakemake would delete it before a resubmitted job starts.
        resume="results/resume/fit_instances",
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=720,
        # How often the resume state is saved: training's interval (train.checkpoint_minutes). A
        # resource, not a param, so a change reruns nothing; a string, as Snakemake rounds numbers.
        checkpoint_minutes=str(config["train"]["checkpoint_minutes"]),
        # Where the dataset is: a resource, which Snakemake does not compare (select_subset tracks it;
        # input root: a rebuilt synthetic city reruns this too).
        frames_root=DATA_ROOT,
    # At the walltime (runtime, 12 h on Lengau) the fit saves and exits 143, and a retry goes on
    # from the saved state: as many retries as training's (train.retries).
    retries: config["train"]["retries"]
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.labels.fit_instances --subset {input.subset} --frames-root {resources.frames_root:q}"
        " --output {output.model} --resume {params.resume} --checkpoint-minutes {resources.checkpoint_minutes}"
        " --settings {params.settings:q} >> {log} 2>&1"


rule label_semantic:
    input:
        subset="results/data/subset/{split}.json",
        root=data_root_input,
        checkpoint=semantic_checkpoint(),
    output:
        labels=directory("results/labels/semantic/{split}/{city}"),
    log:
        "logs/label_semantic/{split}/{city}.log",
    benchmark:
        "results/timing/label_semantic/{split}/{city}.tsv"
    params:
        settings=label_job_settings("semantic"),
        code=code_version("pipeline.labels.semantic"),
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
        # Where the dataset is: a resource, which Snakemake does not compare (select_subset tracks it;
        # input root: a rebuilt synthetic city reruns this too).
        frames_root=DATA_ROOT,
        batch_size=batch_size_resource("labels", "semantic"),   # frames a batch: how, not what
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.labels.semantic --subset {input.subset} --split {wildcards.split}"
        " --city {wildcards.city} --frames-root {resources.frames_root:q} --checkpoint {input.checkpoint}"
        " --output {output.labels} --settings {params.settings:q} --batch-size {resources.batch_size} > {log} 2>&1"


rule label_instance:
    input:
        subset="results/data/subset/{split}.json",
        root=data_root_input,
        semantic="results/labels/semantic/{split}/{city}",
        checkpoint=instance_checkpoint(),
    output:
        labels=directory("results/labels/instance/{split}/{city}"),
    log:
        "logs/label_instance/{split}/{city}.log",
    benchmark:
        "results/timing/label_instance/{split}/{city}.tsv"
    params:
        settings=label_job_settings("instance"),
        code=code_version("pipeline.labels.instance"),
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
        # Where the dataset is: a resource, which Snakemake does not compare (select_subset tracks it;
        # input root: a rebuilt synthetic city reruns this too).
        frames_root=DATA_ROOT,
        batch_size=batch_size_resource("labels", "instance"),   # frames a batch: how, not what
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.labels.instance --subset {input.subset} --split {wildcards.split}"
        " --city {wildcards.city} --frames-root {resources.frames_root:q} --semantic {input.semantic}"
        " --checkpoint {input.checkpoint} --output {output.labels} --settings {params.settings:q}"
        " --batch-size {resources.batch_size} > {log} 2>&1"
