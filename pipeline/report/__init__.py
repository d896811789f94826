"""The report's pictures: what a researcher looks at besides the numbers (issue 11).

The thesis asks its reader to watch the videos (5.1: "highly recommended to watch these
videos"); numbers alone hide flicker, smearing and label bleeding. Each picture is made by a rule
of ``workflow/rules/report.smk`` from the graph's own outputs, so it is rebuilt when what it
shows changes, and ``snakemake --report results/report.html`` gathers them with captions.

One command a picture (``python -m pipeline.report.<what>``)::

    table          the FVD table and the pairwise comparisons as an HTML page
    fvd_chart      FVD per variant with its bootstrap interval, beside thesis table 5.1
    warping        the flow-warping error of each variant's videos
    strip          one test video of a variant: real, synthesised, labels, flow (frames in a row)
    video          the variant's videos beside the real ones: an MP4 and a page that plays it
    losses         a variant's training-loss curves
    label_quality  pseudo-labels against the synthetic city's truth (mIoU, instance matches)
    flow_quality   reference flow against the synthetic city's true motion (end-point error)
    timing         the time each stage and each variant's training took

Every picture names the weights behind it when they were random or trained here (the narrow
random I3D of the demo, random perceptual backbones, self-trained labellers, generators trained
for a few steps): :mod:`pipeline.report.provenance` reads that from the inputs' provenance.
Every picture and page also carries its own provenance record (PNG text chunk, HTML JSON element;
:func:`pipeline.report.figures.report_record`).
Matplotlib runs with the Agg backend; videos are H.264 (yuv420p, even sizes) through
imageio-ffmpeg.
"""
