"""The MLflow pyfunc face of an encoder release, logged as a "model from code".

``registry.log_encoder`` hands this file to MLflow, which copies it into the logged model
and runs it when the model is loaded (``mlflow.pyfunc.load_model``); it is a model
definition, not a module to import. It needs the mpmae package where it is loaded.

Input: float32 (B, C, H, W), the release's input bands normalised as its config.json says
(missing → 0). Output: (B, D) pooled embeddings.
"""

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class EncoderModel(PythonModel):
    def load_context(self, context) -> None:
        from mpmae.model.release import load_encoder

        # "release": the artifacts key registry.log_encoder logs the folder under.
        self.encoder = load_encoder(context.artifacts["release"])

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        with torch.inference_mode():
            return self.encoder.embed(x).numpy()


set_model(EncoderModel())
