"""Which distribution strategy a training process uses, and which of its tasks writes the run."""

import json
import os


def make_strategy(cpu_replicas=0):
    """MultiWorkerMirroredStrategy for a TF_CONFIG cluster, else MirroredStrategy on this host.

    Args:
        cpu_replicas: split the CPU into this many logical devices and mirror over them (a
            multi-device run without GPUs, for tests); 0 uses the GPUs, or the CPU if none.
    """
    import tensorflow as tf

    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_replicas)])
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy([d.name for d in gpus] or ["/cpu:0"])


def is_chief(strategy):
    """True on the one task that writes checkpoints, logs and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief
