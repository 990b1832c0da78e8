"""Fine-tuning CNNs on mechanism-of-action tasks, prediction scoring and conformal sets."""
