"""Hand-built tasks shared by the tests of the reader (test_features) and of the code levels
(test_codes)."""

import toyticket as tt


def hand_task(n, clauses, groups, input_p=0.5):
    """A task with the given clauses [(variables, signs), ...] and output groups."""
    k = len(clauses[0][0])
    if all(len(g) == 1 for g in groups):
        readout, group_size = "clauses", 3
    elif len(groups) == 1:
        readout, group_size = "dnf", 3
    else:
        readout, group_size = "groups", len(groups[0])
    config = tt.TaskConfig(
        n_vars=n,
        n_clauses=len(clauses),
        clause_size=k,
        readout=readout,
        group_size=group_size,
        input_p=input_p,
    )
    objects = tuple(
        tt.Clause(tuple(v), tuple(s), template=sum(1 << i for i, x in enumerate(s) if x < 0))
        for v, s in clauses
    )
    return tt.Task(config=config, clauses=objects, groups=tuple(tuple(g) for g in groups))
