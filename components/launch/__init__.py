"""Where training runs: this process, torchrun over the pod's GPUs, or a Kubeflow Trainer TrainJob
over several nodes; and the check that a step given a GPU can use it."""
