"""Prediction on new text: pipelines (``openbert.pipeline``, ``openbert predict``) and the HTTP
server (``openbert serve``, needs the ``serve`` extra: ``pip install openbert[serve]``)."""
