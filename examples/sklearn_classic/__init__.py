"""Classic scikit-learn pipelines (logistic and linear regression) deployed with their metrics."""
