"""The self-checks give the right verdict and keep the lab running."""
import torch

from nnlab.course import exercises as exercises


def test_a_correct_function_passes_and_is_kept(capsys):
    def flatten(x):
        return x.reshape(len(x), -1)

    assert exercises.check("0.1", flatten) is flatten
    assert "passed" in capsys.readouterr().out
    assert exercises.RESULTS["0.1"].status == "passed"


def test_a_function_not_done_yet_returns_the_reference(capsys):
    def flatten(x):
        raise NotImplementedError("Exercise 0.1")

    fn = exercises.check("0.1", flatten)
    assert fn is exercises.EXERCISES["0.1"].reference
    assert "not done yet" in capsys.readouterr().out
    assert exercises.verify("0.1", flatten).status == "not attempted"


def test_a_wrong_function_says_what_differs_with_a_hint(capsys):
    def flatten(x):  # column-major: the wrong order
        return x.transpose(2, 3).reshape(len(x), -1)

    fn = exercises.check("0.1", flatten)
    out = capsys.readouterr().out
    assert fn is exercises.EXERCISES["0.1"].reference
    assert "differs" in out and "Hint" in out


def test_a_wrong_shape_and_a_crash_are_reported():
    assert "shape" in exercises.verify("0.1", lambda x: x).message
    verdict = exercises.verify("0.1", lambda x: 1 / 0)
    assert verdict.status == "failed" and "ZeroDivisionError" in verdict.message


def test_a_function_that_changes_its_input_fails():
    def flatten(x):
        x.mul_(2)
        return exercises.EXERCISES["0.1"].reference(x) / 2

    verdict = exercises.verify("0.1", flatten)
    assert verdict.status == "failed" and "in place" in verdict.message


def test_compare_goes_through_containers():
    t = torch.arange(4.0)
    assert exercises.compare((t, {"a": 1.0}), (t.clone(), {"a": 1.0})) is None
    assert "['a']" in exercises.compare((t, {"a": 1.0}), (t, {"a": 2.0}))


def test_every_registered_exercise_passes_with_its_own_reference():
    for ex in exercises.EXERCISES.values():
        verdict = exercises.verify(ex.id, ex.reference)
        assert verdict.status == "passed", (ex.id, verdict.message)
