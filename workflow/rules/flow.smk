rule reference_flow:
    input:
        subset="results/data/subset/{split}.json",
        root=data_root_input,
        checkpoint=flow_checkpoint(),
    output:
        flow="results/flow/{split}/{city}.h5",
    log:
        "logs/reference_flow/{split}/{city}.log",
    benchmark:
        "results/timing/reference_flow/{split}/{city}.tsv"
    params:
        # Not flow.batch_size: it changes how the job runs, not the flow (resources.batch_size).
        settings=settings_less("flow", *INFERENCE_KEYS),
        code=code_version("pipeline.flow"),
    threads: 2
    resources:
        # DIS is OpenCV on the CPU: its jobs queue for a CPU node, not a GPU.
        gpu=1 if config["flow"]["backend"] == "flownet2" else 0,
        mem_mb=48000 if config["flow"]["backend"] == "flownet2" else 4000,
        runtime=240,
        # Where the dataset is: a resource, which Snakemake does not compare (select_subset tracks it;
        # input root: a rebuilt synthetic city reruns this too).
        frames_root=DATA_ROOT,
        batch_size=batch_size_resource("flow"),   # frame pairs a backend call: how, not what
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.flow --subset {input.subset} --split {wildcards.split} --city {wildcards.city}"
        " --frames-root {resources.frames_root:q} --output {output.flow} --settings {params.settings:q}"
        " --batch-size {resources.batch_size} > {log} 2>&1"
