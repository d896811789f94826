# The report's pictures (pipeline/report): made by the graph, so each is rebuilt when what it
# shows changes. `snakemake --report results/report.html` gathers every output marked report().
# Videos are H.264 MP4s, each with a small HTML page that plays it: Snakemake's report offers an
# MP4 only as a download but shows an HTML result in a frame.

REPORT_DIR = "results/report"
# Every picture is listed by get_report_output() in common.smk, which `rule all` builds.


rule report_fvd_table:
    input:
        table="results/fvd_table.csv",
        comparisons="results/fvd_comparisons.csv",
        scores=variant_outputs("results/fvd/scores/{variant}.json"),
    output:
        page=report(
            f"{REPORT_DIR}/fvd_table.html",
            caption="../report/fvd_table.rst",
            category="1. FVD",
            subcategory="table",
            labels={"figure": "FVD table and comparisons"},
        ),
    log:
        "logs/report/fvd_table.log",
    params:
        code=code_version("pipeline.report.table"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.report.table --table {input.table} --comparisons {input.comparisons}"
        " --provenance {input.scores} --output {output.page} > {log} 2>&1"


rule report_fvd_chart:
    input:
        table="results/fvd_table.csv",
        scores=variant_outputs("results/fvd/scores/{variant}.json"),
    output:
        picture=report(
            f"{REPORT_DIR}/fvd.png",
            caption="../report/fvd_chart.rst",
            category="1. FVD",
            subcategory="charts",
            labels={"figure": "FVD per variant, beside the thesis"},
        ),
    log:
        "logs/report/fvd_chart.log",
    params:
        code=code_version("pipeline.report.fvd_chart"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.report.fvd_chart --table {input.table} --provenance {input.scores}"
        " --output {output.picture} > {log} 2>&1"


rule report_warping:
    input:
        table="results/fvd_table.csv",
        warping=variant_outputs("results/fvd/warping/{variant}.json"),
        summaries=variant_outputs("results/train/{variant}/summary.json"),
    output:
        picture=report(
            f"{REPORT_DIR}/warping.png",
            caption="../report/warping.rst",
            category="1. FVD",
            subcategory="charts",
            labels={"figure": "warping error per variant"},
        ),
    log:
        "logs/report/warping.log",
    params:
        code=code_version("pipeline.report.warping"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.report.warping --table {input.table} --warping {input.warping}"
        " --provenance {input.summaries} --output {output.picture} > {log} 2>&1"


rule report_strip:
    input:
        videos="results/videos/{variant}.h5",
        real="results/videos/real.h5",
        data=f"results/data/{TEST_SPLIT}.h5",
    output:
        picture=report(
            f"{REPORT_DIR}/strips/{{variant}}.png",
            caption="../report/strip.rst",
            category="2. Variants",
            subcategory="{variant}",
            labels={"variant": "{variant}", "figure": "frames: real, synthesised, labels, flow"},
        ),
    log:
        "logs/report/strip/{variant}.log",
    params:
        code=code_version("pipeline.report.strip"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.report.strip --videos {input.videos} --real {input.real} --data {input.data}"
        " --output {output.picture} > {log} 2>&1"


rule report_video:
    input:
        videos="results/videos/{variant}.h5",
        real="results/videos/real.h5",
    output:
        video=report(
            f"{REPORT_DIR}/videos/{{variant}}.mp4",
            caption="../report/video.rst",
            category="2. Variants",
            subcategory="{variant}",
            labels={"variant": "{variant}", "figure": "video beside the real one (MP4 download)"},
        ),
        page=report(
            f"{REPORT_DIR}/videos/{{variant}}.html",
            caption="../report/video.rst",
            category="2. Variants",
            subcategory="{variant}",
            labels={"variant": "{variant}", "figure": "video beside the real one (plays here)"},
        ),
    log:
        "logs/report/video/{variant}.log",
    params:
        code=code_version("pipeline.report.video"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.report.video --videos {input.videos} --real {input.real}"
        " --output {output.video} --page {output.page} > {log} 2>&1"


rule report_losses:
    input:
        losses="results/train/{variant}/losses.csv",
        summary="results/train/{variant}/summary.json",
    output:
        picture=report(
            f"{REPORT_DIR}/losses/{{variant}}.png",
            caption="../report/losses.rst",
            category="2. Variants",
            subcategory="{variant}",
            labels={"variant": "{variant}", "figure": "training losses"},
        ),
    log:
        "logs/report/losses/{variant}.log",
    params:
        code=code_version("pipeline.report.losses"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.report.losses --losses {input.losses} --summary {input.summary}"
        " --output {output.picture} > {log} 2>&1"


rule report_timing:
    input:
        # Benchmark files are read from the folder, not declared: declaring them would rerun every
        # stage that ran before its benchmark line existed. The table comes last in the graph.
        table="results/fvd_table.csv",
        summaries=variant_outputs("results/train/{variant}/summary.json"),
    output:
        picture=report(
            f"{REPORT_DIR}/timing.png",
            caption="../report/timing.rst",
            category="4. Time",
            subcategory="stages and training",
            labels={"figure": "time per stage and per variant"},
        ),
    log:
        "logs/report/timing.log",
    params:
        timing="results/timing",
        # Each rule's benchmark: path (read once every rule is defined): a file counts for the rule
        # whose pattern it matches, as rules share folders (embed/heldout/).
        benchmarks=lambda wildcards: json.dumps(
            {rule.name: str(rule.benchmark) for rule in workflow.rules if rule.benchmark}, sort_keys=True
        ),
        code=code_version("pipeline.report.timing"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/torch.yaml"
    shell:
        "python -m pipeline.report.timing --timing {params.timing} --benchmarks {params.benchmarks:q}"
        " --summaries {input.summaries}"
        " --output {output.picture} > {log} 2>&1"


# Only the synthetic city knows the true labels and motion.
if SYNTHETIC:

    rule report_label_quality:
        input:
            subset="results/data/subset.json",
            # every city of the train and test splits of the subset
            semantic=lambda wildcards: [
                f"results/labels/semantic/{split}/{city}" for split in SPLITS for city in subset_cities(split)
            ],
            instance=lambda wildcards: [
                f"results/labels/instance/{split}/{city}" for split in SPLITS for city in subset_cities(split)
            ],
        output:
            picture=report(
                f"{REPORT_DIR}/label_quality.png",
                caption="../report/label_quality.rst",
                category="3. Pseudo-labels and flow",
                subcategory="on the synthetic city",
                labels={"figure": "pseudo-label quality"},
            ),
            record=f"{REPORT_DIR}/label_quality.json",
        log:
            "logs/report/label_quality.log",
        params:
            code=code_version("pipeline.report.label_quality"),
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        conda:
            "../../envs/torch.yaml"
        shell:
            "python -m pipeline.report.label_quality --subset {input.subset} --semantic {input.semantic}"
            " --instance {input.instance} --output {output.picture} --record {output.record} > {log} 2>&1"

    rule report_flow_quality:
        input:
            subset="results/data/subset.json",
            flow=lambda wildcards: [
                f"results/flow/{split}/{city}.h5" for split in SPLITS for city in subset_cities(split)
            ],
        output:
            picture=report(
                f"{REPORT_DIR}/flow_quality.png",
                caption="../report/flow_quality.rst",
                category="3. Pseudo-labels and flow",
                subcategory="on the synthetic city",
                labels={"figure": "reference flow quality"},
            ),
            record=f"{REPORT_DIR}/flow_quality.json",
        log:
            "logs/report/flow_quality.log",
        params:
            code=code_version("pipeline.report.flow_quality"),
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        conda:
            "../../envs/torch.yaml"
        shell:
            "python -m pipeline.report.flow_quality --subset {input.subset} --flow {input.flow}"
            " --output {output.picture} --record {output.record} > {log} 2>&1"
