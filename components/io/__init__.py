"""What the step bodies share between their artifacts on disk and `components.qa`: publishing an
artifact only once it is complete, fetching the dataset splits, featurizing examples,
snapshotting models, the Markdown report."""
