"""A third-party codec: an image upload becomes one DT_STRING instance for models that decode images.

SageMaker users asked for ``application/x-image`` to work out of the box; with this plugin installed,
``curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg' .../invocations`` reaches a model whose
signature takes encoded image bytes (a ``[batch]`` string input), with no ``input_fn`` to write.
"""

import numpy as np

from tfio_handlers import hookimpl
from tfio_handlers.errors import BadRequest

IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")


def decode_image(body, media_type, context):
    """The whole body is one image: a batch of one encoded string."""
    if not body:
        raise BadRequest("Empty image body")
    batch = np.empty(1, dtype=object)
    batch[0] = body
    return batch


@hookimpl
def register_codecs(register):
    register("application/x-image", decode=decode_image, aliases=IMAGE_TYPES[:2], text=False)
