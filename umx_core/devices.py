"""The accelerator TensorFlow runs on, as far as sizing a batch needs to know it."""


def accelerator_memory():
    """Bytes TensorFlow may allocate on the first GPU, or None when it sees no GPU."""
    import tensorflow as tf

    if not tf.config.list_logical_devices("GPU"):
        return None
    from tensorflow.python.client import device_lib  # the one API that reports a device's memory limit

    limits = [d.memory_limit for d in device_lib.list_local_devices() if d.device_type == "GPU"]
    return int(limits[0]) if limits else None


def has_gpu():
    """Whether TensorFlow sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))
