"""training: how the Open-Unmix models are trained, checked and packaged.

A run starts from a configuration (`config`: defaults <- a profile in `profiles/` <- flags). It
reads a track-folder dataset as a tf.data pipeline with open-unmix's augmentations (`data`;
`synthesize` and `render` write synthetic datasets in the same layout). It trains one joint model
with a custom loop under any `tf.distribute` strategy (`trainer`, with `steps`, `distribute`,
`schedule`, `summaries`; the command is `python -m training.train`). It keeps checkpoints that a
killed run resumes from (`checkpoint`), and keeps the run's `separator/` at the best weights so far
(`export`), in its run folder (`run_folder`). `assemble` joins single-target runs into one separator and `evaluate` scores a
separator with museval. Data flows one way: training uses `umx_core`'s model, transforms and
storage, and `umx_core` never imports it.
"""
