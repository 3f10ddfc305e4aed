"""What a training run logs to TensorBoard after each epoch (`tensorboard --logdir RUN/logs`)."""


def write_epoch(writer, epoch, record, umx, valid_set, config):
    """Losses (total and per target, both splits), learning rate, throughput, and audio examples.

    Args:
        writer: a `tf.summary` file writer.
        record: the epoch's record (`Trainer.run` history entry).
        umx: the end-to-end model over the trained filters (or a compiled function of it).
        valid_set: the validation dataset; its first `audio_examples` tracks, cut to `audio_seconds`,
            are logged with their estimates.
    """
    import tensorflow as tf

    with writer.as_default(step=epoch):
        for split in ("train", "valid"):
            tf.summary.scalar(f"{split}/loss", record[f"{split}_loss"])
            for target, value in record[f"{split}_targets"].items():
                tf.summary.scalar(f"{split}/{target}", value)
        tf.summary.scalar("learning_rate", record["lr"])
        tf.summary.scalar("excerpts_per_second", record["excerpts_per_second"])
        rate = valid_set.sample_rate
        frames = int(config["audio_seconds"] * rate)
        for k in range(min(config["audio_examples"], len(valid_set))):
            mixture, _ = valid_set.load(0, k)
            mixture = mixture[:, :frames]
            if mixture.shape[-1] <= config["n_fft"]:
                continue
            stems = umx(mixture[None]).numpy()[0]  # (targets, channels, samples)
            tf.summary.audio(f"example{k}/mixture", mixture.T[None], rate)
            for target, stem in zip(config["targets"], stems):
                tf.summary.audio(f"example{k}/{target}", stem.T[None], rate)
    writer.flush()


def progress_line(record, new_lr, improved):
    """The line a run prints after an epoch: losses, learning rate (and its decay), speed, and `*`
    when the validation loss improved."""
    per_target = " ".join(f"{t} {v:.4g}" for t, v in record["valid_targets"].items())
    lr = record["lr"]
    return (f"epoch {record['epoch']}: train {record['train_loss']:.4g} valid {record['valid_loss']:.4g} "
            f"({per_target}) lr {lr:.3g}{' -> %.3g' % new_lr if new_lr != lr else ''} "
            f"{record['excerpts_per_second']:.1f} excerpts/s {record['seconds']:.1f} s{' *' if improved else ''}")
