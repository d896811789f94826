# The video-synthesis study as one graph: Cityscapes (or the synthetic city) -> subset ->
# pseudo-labels -> reference flow -> HDF5 -> 14 trained variants -> test videos -> FVD table.
#   snakemake --profile lengau results/fvd_table.csv          (the study, on a PBS cluster)
#   snakemake --cores 2 --directory demo --configfile config/demo.yaml   (the demo, in demo/)
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
