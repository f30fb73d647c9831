//! Lists page the same way (AIP-158): ListRuns with order_by and filter,
//! ListWaits and lineage with page_size 0 still meaning everything for
//! clients that never page; tokens bound to what they were issued for.

mod common;

use common::*;
use retake::v1 as pb;
use tonic::Code;

const ECHO: &str = "name: echo\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n";
const FAIL: &str = "name: fails\nnodes:\n  a: {agent: local://fail, outputs: [o]}\n";

async fn ids(s: &mut TestServer, req: pb::ListRunsRequest) -> (Vec<String>, String) {
    let resp = s.runs.list_runs(req).await.unwrap().into_inner();
    (
        resp.runs.into_iter().map(|r| r.id).collect(),
        resp.next_page_token,
    )
}

#[tokio::test]
async fn runs_are_ordered_and_filtered_as_asked() {
    let mut s = start().await;
    let mut started = Vec::new();
    for yaml in [ECHO, FAIL, ECHO, FAIL, ECHO] {
        let run = s.start_run(yaml).await;
        s.finish(&run.id).await;
        started.push(run);
    }
    let all: Vec<String> = started.iter().map(|r| r.id.clone()).collect();

    let (newest_first, _) = ids(&mut s, pb::ListRunsRequest::default()).await;
    assert_eq!(newest_first, all.iter().rev().cloned().collect::<Vec<_>>());

    // Oldest first, two at a time: the token keeps the order.
    let asc = |token: String| pb::ListRunsRequest {
        order_by: "create_time asc".into(),
        page_size: 2,
        page_token: token,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = ids(&mut s, asc(token)).await;
        seen.extend(page);
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(seen, all);

    // A filter narrows by status and workflow, and by creation time.
    let (failed, _) = ids(
        &mut s,
        pb::ListRunsRequest {
            filter: "status = FAILED AND workflow = \"fails\"".into(),
            order_by: "create_time".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(failed, [all[1].clone(), all[3].clone()]);
    let third = started[2].create_time.unwrap();
    let since = format!(
        "{}",
        prost_types::Timestamp {
            seconds: third.seconds,
            nanos: third.nanos
        }
    );
    let (later, _) = ids(
        &mut s,
        pb::ListRunsRequest {
            filter: format!("create_time >= \"{since}\""),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(later, [all[4].clone(), all[3].clone(), all[2].clone()]);

    // A token used with another order or filter is refused.
    let (_, token) = ids(&mut s, asc(String::new())).await;
    let err = s
        .runs
        .list_runs(pb::ListRunsRequest {
            page_size: 2,
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("other filters"), "{}", err.message());

    for (filter, order_by) in [("status = DONE", ""), ("", "name")] {
        let err = s
            .runs
            .list_runs(pb::ListRunsRequest {
                filter: filter.into(),
                order_by: order_by.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{filter} {order_by}");
    }
}

#[tokio::test]
async fn waits_page_and_page_size_0_lists_them_all() {
    let mut s = start().await;
    let ask = "name: ask\nnodes:\n  q: {agent: human://input, outputs: [answer]}\n";
    let mut runs = Vec::new();
    for _ in 0..3 {
        let run = s.start_run(ask).await;
        runs.push(run.id);
    }
    // Wait until all three are waiting.
    let all = loop {
        let resp = s
            .runs
            .list_waits(pb::ListWaitsRequest::default())
            .await
            .unwrap()
            .into_inner();
        if resp.waits.len() == 3 {
            assert!(resp.next_page_token.is_empty());
            break resp.waits;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let order: Vec<&str> = all.iter().map(|w| w.run_id.as_str()).collect();
    assert_eq!(order, runs, "oldest first");

    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let resp = s
            .runs
            .list_waits(pb::ListWaitsRequest {
                page_size: 1,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(resp.waits.len() <= 1);
        paged.extend(resp.waits);
        if resp.next_page_token.is_empty() {
            break;
        }
        token = resp.next_page_token;
    }
    assert_eq!(paged, all);

    // A token of the list of every run's waits is not one run's.
    let first = s
        .runs
        .list_waits(pb::ListWaitsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = s
        .runs
        .list_waits(pb::ListWaitsRequest {
            run_id: runs[1].clone(),
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn lineage_pages_in_breadth_first_order() {
    let mut s = start().await;
    let chain = "name: chain\nnodes:\n  a: {agent: local://echo, inputs: {x: \"1\"}, outputs: [o]}\n  b: {agent: local://echo, inputs: {x: \"${a.o}\"}, outputs: [o], depends_on: [a]}\n  c: {agent: local://echo, inputs: {x: \"${b.o}\"}, outputs: [o], depends_on: [b]}\n  d: {agent: local://echo, inputs: {x: \"${c.o}\"}, outputs: [o], depends_on: [c]}\n";
    let run = s.start_run(chain).await;
    let (_, nodes) = s.finish(&run.id).await;
    let last = node(&nodes, "d").output_artifact_ids[0].clone();
    let lineage = |page_size: i32, page_token: String| pb::GetArtifactLineageRequest {
        artifact_id: last.clone(),
        page_size,
        page_token,
        ..Default::default()
    };
    let whole = s
        .artifacts
        .get_artifact_lineage(lineage(0, String::new()))
        .await
        .unwrap()
        .into_inner();
    assert!(whole.entries.len() >= 4, "{}", whole.entries.len());
    assert!(whole.next_page_token.is_empty());

    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let resp = s
            .artifacts
            .get_artifact_lineage(lineage(2, token))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.entries.len() <= 2);
        paged.extend(resp.entries);
        if resp.next_page_token.is_empty() {
            break;
        }
        token = resp.next_page_token;
    }
    assert_eq!(paged, whole.entries);
}
