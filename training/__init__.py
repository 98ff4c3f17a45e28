"""training: the offline trainer. Builds on live's frame path, backbones and bundle format;
`live` never imports anything from here."""
import live  # noqa: F401  (sets the backend and quiets TensorFlow before anything imports it)
