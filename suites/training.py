"""asv benchmarks of the seed CNN (convbench.training): one float32 training step
(forward, cross-entropy, backward, SGD) of the model built from convbench.nn layers and
of the same model from torch.nn layers, at the seed's batch sizes."""
from convbench import training


class TrainingStep:
    params = [list(training.BATCH_SIZES), ["convbench.nn", "torch.nn"]]
    param_names = ["batch", "layers"]
    timeout = 300

    def setup(self, batch, layers):
        self.step = training.step_functions(batch)[layers]
        self.step()

    def time_step(self, batch, layers):
        self.step()
