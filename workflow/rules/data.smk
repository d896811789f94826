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
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.data.synthetic --root {output} --workers {threads} --settings {params.settings:q}"
        " > {log} 2>&1"


# subset.json is the full record (the cities the per-city rules expand to); each consumer reads
# its own part, results/data/subset/{split}.json or gtfine_train.json, which holds only what that
# consumer reads: a rewritten part with the same content has the checksum Snakemake recorded, so
# another test draw reruns the test split's labels, flow and pack, not the train side.
checkpoint select_subset:
    input:
        root=data_root_input,
    output:
        subset="results/data/subset.json",
        parts=expand("results/data/subset/{part}.json",
                     part=[*SPLITS, *([HELDOUT_SPLIT] if DRAW_CHOICE else []), "gtfine_train"]),
    log:
        "logs/select_subset.log",
    benchmark:
        "results/timing/select_subset.tsv"
    params:
        # The one rule that tracks where the dataset is (the others take it as a resource), its
        # path normalised (common.smk): a trailing slash reruns nothing; a move this rule alone.
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
        "python -m pipeline.data.subset --root {params.root:q} --output {output.subset} --parts {output.parts}"
        " --frames {params.frames} --annotated-index {params.annotated}"
        " --settings {params.settings:q} > {log} 2>&1"
