# TensorFlow runs only in these rules' processes (TF 2.21 crashes beside triton, which the
# torch stages load); the torch and TF stages meet through the videos files.


rule local_i3d:
    output:
        i3d=directory("results/models/i3d_local"),
    log:
        "logs/local_i3d.log",
    benchmark:
        "results/timing/local_i3d.tsv"
    params:
        width=config["fvd"]["local_i3d_width"],
        seed=config["fvd"]["local_i3d_seed"],
        code=code_version("pipeline.fvd.i3d"),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/tf.yaml"
    shell:
        "python -m pipeline.fvd.i3d --output {output.i3d} --width-multiplier {params.width}"
        " --seed {params.seed} > {log} 2>&1"


rule embed_real:
    input:
        videos="results/videos/real.h5",
        i3d=i3d_path(),
    output:
        embeddings="results/fvd/embeddings/real.npz",
    log:
        "logs/embed/real.log",
    benchmark:
        "results/timing/embed_real.tsv"
    params:
        settings=settings_of("fvd", *EMBED_KEYS),
        code=code_version("pipeline.fvd.embed"),
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    conda:
        "../../envs/tf.yaml"
    shell:
        "python -m pipeline.fvd.embed --videos {input.videos} --i3d {input.i3d}"
        " --output {output.embeddings} --settings {params.settings:q} > {log} 2>&1"


use rule embed_real as embed with:
    input:
        videos="results/videos/{variant}.h5",
        i3d=i3d_path(),
    output:
        embeddings="results/fvd/embeddings/{variant}.npz",
    log:
        "logs/embed/{variant}.log",
    benchmark:
        "results/timing/embed/{variant}.tsv"


use rule embed_real as embed_heldout_real with:
    input:
        videos="results/videos/heldout/real.h5",
        i3d=i3d_path(),
    output:
        embeddings="results/fvd/embeddings/heldout/real.npz",
    log:
        "logs/embed/heldout/real.log",
    benchmark:
        "results/timing/embed/heldout/real.tsv"


use rule embed_real as embed_draw_candidates with:
    input:
        videos="results/videos/heldout/{variant}.h5",
        i3d=i3d_path(),
    output:
        embeddings="results/fvd/embeddings/heldout/{variant}.npz",
    log:
        "logs/embed/heldout/{variant}.log",
    benchmark:
        "results/timing/embed/heldout/{variant}.tsv"


# fvd.draw_choice.auto: the candidate draw with the lowest FVD on the held-out videos.
rule choose_draw:
    input:
        real="results/fvd/embeddings/heldout/real.npz",
        candidates="results/fvd/embeddings/heldout/{variant}.npz",
    output:
        draws="results/fvd/draws/{variant}.json",
    log:
        "logs/choose_draw/{variant}.log",
    benchmark:
        "results/timing/choose_draw/{variant}.tsv"
    params:
        settings=settings_of("fvd", *DRAW_KEYS),
        code=code_version("pipeline.fvd.draws"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/tf.yaml"
    shell:
        "python -m pipeline.fvd.draws --real {input.real} --candidates {input.candidates}"
        " --variant {wildcards.variant} --output {output.draws} --settings {params.settings:q} > {log} 2>&1"


rule fvd:
    input:
        real="results/fvd/embeddings/real.npz",
        fake="results/fvd/embeddings/{variant}.npz",
    output:
        scores="results/fvd/scores/{variant}.json",
    log:
        "logs/fvd/{variant}.log",
    benchmark:
        "results/timing/fvd/{variant}.tsv"
    params:
        settings=settings_of("fvd", *SCORE_KEYS),
        code=code_version("pipeline.fvd.score"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/tf.yaml"
    shell:
        "python -m pipeline.fvd.score --real {input.real} --fake {input.fake} --variant {wildcards.variant}"
        " --output {output.scores} --settings {params.settings:q} > {log} 2>&1"


rule fvd_table:
    input:
        scores=variant_outputs("results/fvd/scores/{variant}.json"),
        warping=variant_outputs("results/fvd/warping/{variant}.json"),
        training=variant_outputs("results/train/{variant}/summary.json"),
    output:
        table="results/fvd_table.csv",
        comparisons="results/fvd_comparisons.csv",
    log:
        "logs/fvd_table.log",
    benchmark:
        "results/timing/fvd_table.tsv"
    params:
        variants=settings("variants"),
        settings=settings_of("fvd", *TABLE_KEYS),
        code=code_version("pipeline.fvd.table"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/tf.yaml"
    shell:
        "python -m pipeline.fvd.table --scores {input.scores} --variants-settings {params.variants:q}"
        " --warping {input.warping} --training {input.training} --output {output.table}"
        " --comparisons-output {output.comparisons} --settings {params.settings:q} > {log} 2>&1"
