"""convtrain worker: everything that needs torch (models, data, training, Celery tasks)."""
