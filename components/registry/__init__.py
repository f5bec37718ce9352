"""Where trained models are registered (an embedded file registry or Kubeflow Model Registry), and
the records of where a registered version is served."""
