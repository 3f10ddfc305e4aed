"""training: the tf.data track-folder dataset and synthetic data (the training loop comes with its issue)."""
