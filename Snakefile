# The video-synthesis study as one graph: Cityscapes (or the synthetic city) -> subset ->
# pseudo-labels -> reference flow -> HDF5 -> 14 trained variants -> test videos -> FVD table.
#   snakemake --profile lengau results/fvd_table.csv          (the study, on a PBS cluster)
#   snakemake --cores 2 --directory demo --configfile config/demo.yaml   (the demo, in demo/)
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# The study sits beside this file; --configfile overrides merge over it.
configfile: f"{workflow.basedir}/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/pack.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/synthesize.smk"
include: "workflow/rules/fvd.smk"
include: "workflow/rules/report.smk"


# The demo and the study keep separate folders (README: the demo works in demo/): a run that puts
# one's results/ where the other's are is said, not stopped (a deliberate one may have reasons).
if config["data"]["source"] == "synthetic" and Path.cwd().resolve() == Path(workflow.basedir).resolve():
    print("warning: the synthetic city's run in the repository root puts its results/ where the study's go; "
          "the demo runs in its own folder: --directory demo (make demo)", file=sys.stderr)
elif config["data"]["source"] != "synthetic" and Path.cwd().resolve() == Path(workflow.basedir, "demo").resolve():
    print("warning: the study's config runs in demo/, the demo's folder: add --configfile config/demo.yaml "
          "(from the repository root) for the demo", file=sys.stderr)


# Light rules run where Snakemake runs (the login node on a cluster).
localrules:
    all,
    select_subset,
    fvd_table,
    report_fvd_table,
    report_fvd_chart,
    report_warping,
    report_losses,
    report_timing,


rule all:
    input:
        get_final_output(),
    default_target: True
