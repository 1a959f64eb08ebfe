"""A Keras 3 CNN trained in seconds on scikit-learn's digits and deployed from its ``.keras`` file."""
