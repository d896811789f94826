rule reference_flow:
    input:
        subset="results/data/subset.json",
        checkpoint=flow_checkpoint(),
    output:
        flow="results/flow/{split}/{city}.h5",
    log:
        "logs/reference_flow/{split}/{city}.log",
    benchmark:
        "results/timing/reference_flow/{split}/{city}.tsv"
    params:
        settings=settings("flow"),
        code=code_version("pipeline.flow"),
    threads: 2
    resources:
        # DIS is OpenCV on the CPU: its jobs queue for a CPU node, not a GPU.
        gpu=1 if config["flow"]["backend"] == "flownet2" else 0,
        mem_mb=48000 if config["flow"]["backend"] == "flownet2" else 4000,
        runtime=240,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.flow --subset {input.subset} --split {wildcards.split}"
        " --city {wildcards.city} --output {output.flow} --settings {params.settings:q} > {log} 2>&1"
