"""Pseudo-labels for every frame: DeepLabV3+ semantic and Mask R-CNN instance labellers.

Cityscapes annotates one frame in 30 (the 20th); the study needs labels for all 30 (thesis 4.4,
4.5.1), which the thesis made with DeepLabV3+ (Chen et al. 2018) and Detectron2 (Wu et al. 2019).
Here they are stages of the graph, one small interface for both:

- ``semantic``: ``SemanticLabeller(frames) -> label ids`` (DeepLabV3+ from
  segmentation-models-pytorch, 19 train ids mapped to Cityscapes label ids);
  CLI ``python -m pipeline.labels.semantic`` (rule ``label_semantic``).
- ``instance``: ``labeller(frames, label_ids) -> instanceIds`` (``labelId*1000+k`` on thing
  instances, painted in ascending score where the semantic class agrees), backends
  ``torchvision`` (Mask R-CNN R50-FPN) and ``detectron2`` (its Cityscapes Mask R-CNN config);
  CLI ``python -m pipeline.labels.instance`` (rule ``label_instance``).
- ``fit_segmenter`` / ``fit_instances``: train the networks on the gtFine frames of the train
  split where no checkpoint is configured (the demo's way; outputs say they are self-trained).
- ``quality``: mIoU and instance match share against true labels (the synthetic city).
"""
