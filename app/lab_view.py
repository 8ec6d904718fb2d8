"""Widgets the Labs and Instructor pages share: choosing a challenge (also from ?challenge= in the URL), its
facts, a submission's checks, tables of submissions. Layout only; the figures come from app.labs."""
from __future__ import annotations

import streamlit as st

from app.labs import fmt_value
import store as db
from store.challenges import ChallengeInfo, get_submission, list_challenges


def pick_challenge(store, user, key: str = "challenge") -> ChallengeInfo | None:
    """A select box of the challenges `user` sees; a link's ?challenge=ID preselects one (a challenge the user
    may not see is reported as not existing, whether it exists or not)."""
    chs = list_challenges(store, user=user)
    wanted = st.query_params.get("challenge")
    ids = [c.id for c in chs]
    # The URL wins only when it differs from what this tab wrote into it (a pasted link, back/forward); else
    # the select box's own choice stands (see app.state.sync_url).
    if wanted is not None and wanted != st.session_state.get(f"{key}_written"):
        wid = int(wanted) if str(wanted).isdigit() else None
        if wid in ids:
            st.session_state[key] = wid
        else:
            st.warning(f"The link names challenge {str(wanted)[:20]}, which does not exist.",
                       icon=":material/link_off:")
    if not chs:
        st.info("No challenges yet." + ("" if user is not None and user.role != "instructor" else
                                        " Publish one on the Instructor page."))
        return None
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[0]
    by_id = {c.id: c for c in chs}
    cid = st.selectbox("Challenge", ids, key=key,
                       format_func=lambda i: f"#{i} {by_id[i].title}" + (f" (until {by_id[i].deadline[:16]})"
                                                                          if by_id[i].deadline else ""))
    if st.query_params.get("challenge") != str(cid):
        st.query_params["challenge"] = str(cid)
    st.session_state[f"{key}_written"] = str(cid)
    return by_id[cid]


def challenge_facts(ch, info: ChallengeInfo) -> None:
    limits = ", ".join(f"{k.split('_')[0]} ≤ {fmt_value(k.split('_')[0], v)}"
                       for k, v in ch.limits.items()) or "the MCU's capacity"
    cols = st.columns(4)
    cols[0].metric("Target", ch.mcu, help=f"runtime {ch.runtime}")
    cols[1].metric("Data set", ch.dataset.rsplit("/", 1)[-1])
    cols[2].metric("Accuracy target", f"{100 * ch.accuracy_target:.0f} %" if ch.accuracy_target else "none")
    cols[3].metric("Deadline", (info.deadline or "none")[:16].replace("T", " "))
    st.caption(f"Limits: {limits}. Scoring: {ch.method}{' = ' + ch.formula.text if ch.formula else ''}; the "
               f"{info.counts} submission counts. Checks: {', '.join(ch.check_names())}."
               + (" Graded on a hidden test split." if ch.test_dataset else ""))


def check_table(sub) -> None:
    """A submission's verdict and its checks: value, limit, verdict, how the value was obtained."""
    if sub.status in ("queued", "grading"):
        st.info(f"Submission #{sub.id}: {sub.status}…", icon=":material/hourglass_top:")
        return
    if sub.error:
        st.error(f"Submission #{sub.id}: {sub.error}", icon=":material/error:")
        return
    verdict = "passed" if sub.passed else "not passed"
    st.markdown(f"**Submission #{sub.id}: {verdict}**, score {sub.score:g}")
    st.dataframe([{"check": c["name"], "value": fmt_value(c["name"], c["value"]),
                   "limit": fmt_value(c["name"], c["limit"]), "verdict": "pass" if c["passed"] else "FAIL",
                   "how": c.get("detail", "")} for c in sub.result.get("checks", [])],
                 hide_index=True, width="stretch")


def submission_table(rows: list[dict]) -> None:
    st.dataframe([{**r, "submitted": (r["submitted"] or "")[:19].replace("T", " "),
                   "graded": (r["graded"] or "")[:19].replace("T", " ")} for r in reversed(rows)],
                 hide_index=True, width="stretch")


def open_submission(store, sub_id, user):
    """The submission a select box or a link (?submission=ID) names; NotFoundError for one the user may not see."""
    try:
        n = int(str(sub_id))
    except ValueError:
        raise db.NotFoundError(f"no submission with id {str(sub_id)[:20]!r}") from None
    return get_submission(store, n, user=user)
