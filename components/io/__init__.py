"""What the step bodies share between their artifacts on disk and `components.qa`: publishing an
artifact only once it is complete, featurizing examples, snapshotting models, the Markdown report."""
