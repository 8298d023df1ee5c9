"""The convtrain Python client: what a script, a notebook and the `convtrain` commands use to talk to a service.

::

    from service.client import Client, ApiError

    client = Client("http://127.0.0.1:8000")            # token: CONVTRAIN_TOKEN, or token=
    job = client.submit("examples/net1-default.json", budget={"examples": 3000})
    job.wait()                                          # a progress bar, in a terminal or in Jupyter
    rows = job.metrics_records()                        # pandas.DataFrame(rows)
    job.download("onnx", "net1.onnx")
    client.upload_dataset("digits.zip", "digits")       # then train on it: data={"dataset": "digits"}
    search = client.search("examples/assignment-search.json")
    search.wait()                                       # trials done out of the search's, best val_acc so far
    search.best["javascript"]                           # the best network as the demo's code

Every refusal raises `ApiError` with the problem+json's status, title, detail and field errors. Torch-free,
like the rest of `service/`.
"""

from service.client.client import Client
from service.client.datasets import Dataset
from service.client.errors import ApiError, Unreachable, WaitTimeout
from service.client.events import Event
from service.client.jobs import Job
from service.client.searches import Search
from service.client.sweeps import Sweep

__all__ = ["ApiError", "Client", "Dataset", "Event", "Job", "Search", "Sweep", "Unreachable", "WaitTimeout"]
