rule synthesize:
    input:
        model="results/train/{variant}/model.pt",
        clusters=clusters_input,
        data=f"results/data/{TEST_SPLIT}.h5",
    output:
        videos="results/videos/{variant}.h5",
        warping="results/fvd/warping/{variant}.json",
    log:
        "logs/synthesize/{variant}.log",
    benchmark:
        "results/timing/synthesize/{variant}.tsv"
    params:
        clusters=clusters_arg,
        settings=settings("fvd"),
        code=code_version("synthesize", "train", "models", "pack"),
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.synthesize --model {input.model} {params.clusters} --data {input.data}"
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
        settings=settings("fvd"),
        code=code_version("synthesize", "pack"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.synthesize --real --data {input.data} --output {output.videos}"
        " --settings {params.settings:q} > {log} 2>&1"
