"""Loaded by MLflow ("models from code"): the model object of every ser_bench MLflow model. No pickle involved."""

import mlflow.models

from ser_bench.inference.pyfunc import SERPythonModel

mlflow.models.set_model(SERPythonModel())
