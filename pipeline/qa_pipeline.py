"""The DAG: download -> preprocess train | preprocess validation -> fine-tune -> evaluate -> register.

                 download
                /        \\
   preprocess train    preprocess validation
               |            |
           fine-tune        |              (num_nodes > 1: launcher of a Kubeflow Trainer TrainJob)
                \\          /
                  evaluate
                     |
               register model   (never cached)
                     |
               deploy model     (never cached; only when compiled in: with_deploy=True)

`build_pipeline(settings)` turns the plain component functions in `components/`
into KFP components on the settings' images and returns the pipeline function,
ready for `kfp.compiler.Compiler().compile` or a `kfp.local` run. The deploy step is
compiled in only with `with_deploy=True` (`compile --deploy`, `run --local --set deploy=true`),
so the default DAG has six tasks; in it, the `deploy` parameter (default False) still decides
at run time whether the step deploys (docs/serving.md).
"""


import functools
from typing import NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import Markdown, Metrics, Model

from components.deploy import deploy_model
from components.download import download
from components.evaluate import evaluate
from components.fine_tune import fine_tune
from components.launch.accelerator import ACCELERATOR_ENV
from components.preprocess import preprocess_train, preprocess_validation
from components.register import register_model
from pipeline.parameters import step_args, taking_parameters
from pipeline.serving import predictor_settings
from pipeline.settings import CompileSettings
from pipeline.steps import DEPLOY, DOWNLOAD, EVALUATE, FINE_TUNE, PREPROCESS, REGISTER, TRAINJOB_LAUNCHER, Step

PIPELINE_NAME = "qa-finetune"
Outputs = NamedTuple("Outputs", [("metrics", Metrics), ("model", Model), ("report", Markdown)])


def build_pipeline(settings: CompileSettings = CompileSettings(), with_deploy: bool = False):
    cpu = functools.partial(dsl.component, base_image=settings.cpu_image, install_kfp_package=False)
    gpu = functools.partial(dsl.component, base_image=settings.gpu_image, install_kfp_package=False)
    download_op, register_op = cpu(download), cpu(register_model)
    preprocess_train_op, preprocess_validation_op = cpu(preprocess_train), cpu(preprocess_validation)
    # num_nodes > 1: fine-tune submits a TrainJob, whose nodes have the GPUs
    fine_tune_step = TRAINJOB_LAUNCHER if settings.num_nodes > 1 else FINE_TUNE

    def on_gpu(step: Step) -> bool:
        """The GPU image and the accelerator: the step's declaration, and eval_on_gpu for evaluate."""
        return step.gpu and (step is not EVALUATE or settings.eval_on_gpu)

    fine_tune_op = (gpu if on_gpu(fine_tune_step) else cpu)(fine_tune)
    evaluate_op = (gpu if on_gpu(EVALUATE) else cpu)(evaluate)

    def sized(task, step: Step):
        res = settings.resources_for(step.key)
        task.set_cpu_request(res.cpu).set_cpu_limit(res.cpu)
        task.set_memory_request(res.memory).set_memory_limit(res.memory)
        if on_gpu(step) and settings.accelerator_count:
            task.set_accelerator_type(settings.accelerator_type)
            task.set_accelerator_limit(settings.accelerator_count)
            for key, value in settings.node_selector:
                kubernetes.add_node_selector(task, label_key=key, label_value=value)
            for key, operator, effect in settings.tolerations:
                kubernetes.add_toleration(task, key=key, operator=operator, effect=effect)
            # the step fails fast if torch then sees no accelerator (components/launch/accelerator.py)
            task.set_env_variable(ACCELERATOR_ENV, settings.accelerator_type)
        if settings.pvc_name and step.pvc:
            kubernetes.mount_pvc(task, pvc_name=settings.pvc_name, mount_path=settings.pvc_mount_path)
            task.set_env_variable("HF_HOME", f"{settings.pvc_mount_path}/hf-cache")
        if settings.image_pull_secrets:
            kubernetes.set_image_pull_secrets(task, list(settings.image_pull_secrets))
        return task

    def registry_env(task):
        """The Model Registry token, and the S3 endpoint that components.registry.client.serving_uri
        writes into a minio:// model's s3:// URI (register records it; deploy converts a
        record made before that the same way)."""
        kubernetes.use_secret_as_env(task, secret_name=settings.registry_token_secret,
                                     secret_key_to_env={"token": "MODEL_REGISTRY_TOKEN"}, optional=True)
        kubernetes.use_secret_as_env(task, secret_name=settings.s3_secret, optional=True,
                                     secret_key_to_env={"AWS_ENDPOINT_URL": "AWS_ENDPOINT_URL"})

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="Fine-tune and evaluate an extractive QA model on SQuAD-style data, "
                              "then register it.")
    @taking_parameters(num_nodes=settings.num_nodes)  # the signature: pipeline/parameters.py
    def qa_finetune(p) -> Outputs:
        fetched = sized(download_op(**step_args(DOWNLOAD, p)), DOWNLOAD)
        # no retry: a wrong input fails the same way every time; network reads retry inside the step
        kubernetes.use_secret_as_env(fetched, secret_name=settings.hf_token_secret,
                                     secret_key_to_env={"HF_TOKEN": "HF_TOKEN"}, optional=True)
        kubernetes.use_secret_as_env(fetched, secret_name=settings.s3_secret, optional=True,
                                     secret_key_to_env={k: k for k in ("AWS_ACCESS_KEY_ID",
                                                                       "AWS_SECRET_ACCESS_KEY",
                                                                       "AWS_ENDPOINT_URL")})

        train_features = sized(preprocess_train_op(
            train_data=fetched.outputs["train_data"], base_model=fetched.outputs["base_model"],
            **step_args(PREPROCESS, p)), PREPROCESS)
        validation_features = sized(preprocess_validation_op(
            validation_data=fetched.outputs["validation_data"], base_model=fetched.outputs["base_model"],
            **step_args(PREPROCESS, p)), PREPROCESS)

        trained = sized(fine_tune_op(
            train_features=train_features.outputs["train_features"],
            base_model=fetched.outputs["base_model"], **step_args(FINE_TUNE, p),
            trainjob=settings.trainjob(), run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER),
            fine_tune_step)
        # preempted (SIGTERM) or lost node: the retry resumes from the checkpoint in checkpoint_dir
        trained.set_retry(num_retries=2, backoff_duration="60s")

        scored = sized(evaluate_op(
            model=trained.outputs["model"], validation_data=fetched.outputs["validation_data"],
            validation_features=validation_features.outputs["validation_features"],
            **step_args(EVALUATE, p)),
            EVALUATE)

        registered = sized(register_op(
            model=trained.outputs["model"], metrics=scored.outputs["metrics"],
            train_data=fetched.outputs["train_data"], **step_args(REGISTER, p),
            pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER), REGISTER)
        registered.set_caching_options(enable_caching=False)
        registry_env(registered)
        if with_deploy:
            deployed = sized(cpu(deploy_model)(
                model=trained.outputs["model"], metrics=scored.outputs["metrics"],
                registration=registered.outputs["registration"], **step_args(DEPLOY, p),
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                predictor=predictor_settings(settings)), DEPLOY)
            deployed.set_caching_options(enable_caching=False)
            registry_env(deployed)
        return Outputs(metrics=scored.outputs["metrics"], model=trained.outputs["model"],
                       report=scored.outputs["report"])

    return qa_finetune
