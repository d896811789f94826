rule train:
    input:
        data=training_data,
        weights=backbone_weights,
    output:
        model="results/train/{variant}/model.pt",
        losses="results/train/{variant}/losses.csv",
        summary="results/train/{variant}/summary.json",
        # losses.csv's rows as TensorBoard scalars; live in {params.resume}/tensorboard while it runs
        tensorboard=directory("results/train/{variant}/tensorboard"),
    log:
        "logs/train/{variant}.log",
    benchmark:
        "results/timing/train/{variant}.tsv"
    params:
        # Only what can change this variant's result (pipeline/train/settings.py): Snakemake
        # compares params to decide a rerun, and the loop fingerprints them for a resume.
        settings=train_job_settings,
        code=code_version("pipeline.train"),
        # Not a declared output: Snakemake would delete it before a resubmitted job starts.
        resume="results/resume/{variant}",
    threads: 4
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=720,
        # How, not what: the checkpoint interval and torch.compile. A resource, not a param, as
        # Snakemake reruns a job for a changed param but not for a changed resource; a resumed
        # job takes the new values.
        train_runtime=stage_settings(train_runtime),
    # A job ends at the walltime (runtime, 12 h on Lengau) and its retries resume it: 1 + retries
    # walltimes a variant at most (config.yaml train.retries).
    retries: config["train"]["retries"]
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.train --variant {wildcards.variant} --data {input.data}"
        " --output $(dirname {output.model}) --resume {params.resume}"
        " --settings {params.settings:q} --runtime {resources.train_runtime:q} >> {log} 2>&1"


rule cluster_features:
    input:
        model="results/train/{variant}/model.pt",
        data=training_data,
    output:
        clusters="results/train/{variant}/clusters.pt",
    log:
        "logs/cluster_features/{variant}.log",
    benchmark:
        "results/timing/cluster_features/{variant}.tsv"
    params:
        settings=stage_settings(cluster_settings),
        code=code_version("pipeline.train.cluster"),
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.train.cluster --model {input.model} --data {input.data}"
        " --output {output.clusters} --settings {params.settings:q} > {log} 2>&1"
