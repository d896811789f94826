rule synthesize:
    input:
        model="results/train/{variant}/model.pt",
        clusters=clusters_input,
        draws=draws_input,
        data=f"results/data/{TEST_SPLIT}.h5",
    output:
        videos="results/videos/{variant}.h5",
        warping="results/fvd/warping/{variant}.json",
    log:
        "logs/synthesize/{variant}.log",
    benchmark:
        "results/timing/synthesize/{variant}.tsv"
    params:
        features=feature_args,
        settings=synthesis_job_settings,
        code=code_version("pipeline.synthesize"),
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.synthesize --model {input.model} {params.features} --data {input.data}"
        " --output {output.videos} --warping {output.warping} --settings {params.settings:q} > {log} 2>&1"


rule real_videos:
    input:
        data=f"results/data/{TEST_SPLIT}.h5",
    output:
        videos="results/videos/real.h5",
    log:
        "logs/real_videos.log",
    benchmark:
        "results/timing/real_videos.tsv"
    params:
        settings=settings_of("fvd", *REAL_KEYS),
        code=code_version("pipeline.synthesize"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.synthesize --real --data {input.data} --output {output.videos}"
        " --settings {params.settings:q} > {log} 2>&1"


# fvd.draw_choice.auto (common.smk DRAW_CHOICE): the held-out videos under every candidate
# feature draw, and the real held-out videos; rules fvd.smk embed_heldout_*, choose_draw score them.
rule draw_candidates:
    input:
        model="results/train/{variant}/model.pt",
        clusters="results/train/{variant}/clusters.pt",
        data=f"results/data/{HELDOUT_SPLIT}.h5",
    output:
        videos=temp("results/videos/heldout/{variant}.h5"),
    log:
        "logs/draw_candidates/{variant}.log",
    benchmark:
        "results/timing/draw_candidates/{variant}.tsv"
    params:
        settings=candidate_job_settings,
        code=code_version("pipeline.synthesize"),
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=120,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.synthesize --heldout --model {input.model} --clusters {input.clusters}"
        " --data {input.data} --output {output.videos} --settings {params.settings:q} > {log} 2>&1"


rule real_heldout_videos:
    input:
        data=f"results/data/{HELDOUT_SPLIT}.h5",
    output:
        videos="results/videos/heldout/real.h5",
    log:
        "logs/real_heldout_videos.log",
    benchmark:
        "results/timing/real_heldout_videos.tsv"
    params:
        settings=stage_settings(real_heldout_settings),
        code=code_version("pipeline.synthesize"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.synthesize --real --heldout --data {input.data} --output {output.videos}"
        " --settings {params.settings:q} > {log} 2>&1"
