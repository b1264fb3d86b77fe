import torch

from mpmae.evaluate.config import EvaluateConfig, LinearConfig, SegmentationConfig
from mpmae.evaluate.protocols.frozen import protocol_score
from mpmae.evaluate.protocols.knn import knn_logits
from mpmae.evaluate.protocols.linear_head import train_linear_head
from mpmae.evaluate.protocols.metrics import accuracy_counts
from mpmae.evaluate.protocols.recipes import KNN_VOTE
from mpmae.evaluate.protocols.segmentation_head import train_segmentation_head


def _clusters(n: int, classes: int, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    y = torch.arange(n) % classes
    return centres[y] + torch.randn(n, dim, generator=g), y


def test_knn_separates_clusters_and_a_far_point_follows_its_neighbours():
    x, y = _clusters(120, 3, 8, seed=0)
    test_x, test_y = _clusters(30, 3, 8, seed=0)
    logits = knn_logits(x, y, test_x, 3, k=5, temperature=0.07)
    assert (logits.argmax(1) == test_y).float().mean() > 0.9


def test_knn_votes_by_summed_similarity_weight_and_a_tie_goes_to_the_lowest_class():
    """What the rows' ``knn_vote`` says: weights exp(cos / T) summed per class, not a
    majority; an exact tie goes to the lowest class index."""
    near, far = [1.0, 0.0], [0.9, (1 - 0.9**2) ** 0.5]  # cosine 1.0 and 0.9 to the query
    x, query = torch.tensor([near, far, far]), torch.tensor([[1.0, 0.0]])
    outvoted = knn_logits(x, torch.tensor([0, 1, 1]), query, 2, k=3, temperature=0.07)
    assert accuracy_counts(outvoted, torch.tensor([0])).item() == 1  # one close beats two
    tied = knn_logits(torch.tensor([near, near]), torch.tensor([2, 1]), query, 3, k=2,
                      temperature=0.07)
    assert tied[0, 1] == tied[0, 2] and accuracy_counts(tied, torch.tensor([1])).item() == 1


def test_a_knn_row_says_how_it_voted():
    x, y = _clusters(12, 3, 4, seed=0)
    scored = protocol_score(EvaluateConfig(protocol="knn"), "classification", ([x], y),
                            ([x], y), 3, seed=0, input_size=(8, 8))
    assert scored.details == {"k": 12, "temperature": 0.07,
                              "knn_vote": KNN_VOTE["classification"]}
    assert "tie goes to the lowest class index" in scored.details["knn_vote"]


def test_knn_multilabel_scores_labels_by_neighbour_votes():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    y = torch.tensor([[1, 0], [1, 1], [0, 1]])
    logits = knn_logits(x, y, torch.tensor([[1.0, 0.05]]), 2, k=2, temperature=0.07,
                        multilabel=True)
    assert logits[0, 0] > 0 and logits[0, 0] > logits[0, 1]


def test_linear_head_learns_separable_classes_and_is_seeded():
    x, y = _clusters(256, 4, 16, seed=1)
    cfg = LinearConfig(epochs=30, batch_size=64, blr=1e-2)
    head = train_linear_head(x, y, 4, cfg, seed=3)
    with torch.no_grad():
        assert (head(x).argmax(1) == y).float().mean() > 0.95
        again = train_linear_head(x, y, 4, cfg, seed=3)
        assert torch.equal(head.weight, again.weight)


def test_linear_head_multilabel_uses_smoothed_bce():
    x, y = _clusters(128, 2, 8, seed=2)
    multi = torch.stack([y == 0, torch.ones_like(y, dtype=torch.bool)], 1).long()
    head = train_linear_head(x, multi, 2, LinearConfig(epochs=40, blr=1e-2), seed=0,
                             multilabel=True)
    with torch.no_grad():
        predicted = head(x) > 0
    assert (predicted == multi.bool()).float().mean() > 0.9


def test_segmentation_head_learns_a_map_from_the_stage_features_and_crops_padding():
    g = torch.Generator().manual_seed(0)
    coarse = torch.randn(24, 4, 4, 4, generator=g)  # (N, C, h, w): stage maps at stride 2
    # The class of a pixel is whether channel 0 of its cell is positive; labels are 7x7,
    # the input was padded to 8x8.
    labels = torch.nn.functional.interpolate((coarse[:, :1] > 0).float(), size=(8, 8))
    labels = labels[:, 0, :7, :7].long()
    cfg = SegmentationConfig(epochs=60, batch_size=8, lr=1e-2, width=16)
    head = train_segmentation_head([coarse], labels, 2, cfg, seed=0, input_size=(8, 8))
    with torch.no_grad():
        predicted = head([coarse], (8, 8))[..., :7, :7].argmax(1)
    # Bilinear upsampling blurs cell borders; chance is 0.5.
    assert (predicted == labels).float().mean() > 0.85
