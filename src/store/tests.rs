use super::*;

fn rec(topic: &str, ts: u64, id: &str) -> Record {
    Record {
        topic: topic.into(),
        ts,
        hash: hash(id),
        frame: id.as_bytes().to_vec(),
    }
}

fn failures() -> mpsc::Sender<Failure> {
    mpsc::channel(8).0
}

#[tokio::test]
async fn append_read_page_and_dedupe() {
    let store = Store::in_memory(failures()).expect("store");
    store
        .append_durable(vec![
            rec("t", 2, "b"),
            rec("t", 1, "a"),
            rec("u", 1, "x"),
            rec("t", 3, "c"),
            rec("t", 2, "b"),
        ])
        .await
        .expect("append");
    let ids = store.ids("t").expect("ids");
    assert_eq!(ids.iter().map(|(ts, _)| *ts).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(store.count("u").expect("count"), 1);
    assert_eq!(
        store
            .frames("t", &[(3, hash("c")), (2, hash("nope")), (1, hash("a"))])
            .expect("frames"),
        [b"c".to_vec(), b"a".to_vec()]
    );
    assert!(
        store
            .frames("u", &[(3, hash("c")), (2, hash("a"))])
            .expect("frames")
            .is_empty(),
        "a key names its room and time"
    );
    assert_eq!(
        store.page("t", None, 2).expect("page"),
        [b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(
        store.page("t", Some((2, hash("b"))), 10).expect("page"),
        [b"a".to_vec()]
    );
    store.prune("t", 3).await.expect("prune");
    assert_eq!(store.count("t").expect("count"), 1);
    assert_eq!(
        store.frames("t", &[(1, hash("a"))]).expect("frames").len(),
        0
    );
}

#[tokio::test]
async fn survives_reopen_and_names_a_damaged_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), failures()).expect("open");
        store
            .append_durable(vec![rec("t", 1, "a")])
            .await
            .expect("append");
    }
    // The writer thread holds the database until its queue closes.
    let reopened = loop {
        match Store::open(dir.path(), failures()) {
            Ok(s) => break s,
            Err(StoreError::Open { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(reopened.count("t").expect("count"), 1);
    drop(reopened);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let path = dir.path().join(FILE);
    let mut bytes = std::fs::read(&path).expect("read");
    for b in bytes.iter_mut().take(64) {
        *b ^= 0xa5;
    }
    std::fs::write(&path, &bytes).expect("write");
    let err = Store::open(dir.path(), failures()).expect_err("damaged");
    let msg = err.to_string();
    assert!(msg.contains(FILE) && msg.contains("mv "), "{msg}");
}

#[tokio::test]
async fn a_record_held_already_keeps_its_first_entry() {
    let store = Store::in_memory(failures()).expect("store");
    store
        .append_durable(vec![rec("t", 2, "b")])
        .await
        .expect("append");
    let mut again = rec("t", 2, "b");
    again.frame = b"other".to_vec();
    store
        .append_durable(vec![again.clone(), again])
        .await
        .expect("append");
    assert_eq!(store.count("t").expect("count"), 1);
    assert_eq!(
        store.frames("t", &[(2, hash("b"))]).expect("frames"),
        [b"b".to_vec()]
    );
}

#[test]
fn a_store_with_the_old_index_table_opens_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(FILE);
    {
        let db = Database::create(&path).expect("create");
        let txn = db.begin_write().expect("write");
        {
            let mut messages = txn.open_table(MESSAGES).expect("messages");
            messages
                .insert(("t", 1, &hash("a")[..]), &b"a"[..])
                .expect("insert");
            let mut old: redb::Table<&[u8], (&str, u64)> = txn
                .open_table(TableDefinition::new("index"))
                .expect("index");
            old.insert(&hash("a")[..], ("t", 1)).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let store = Store::open(dir.path(), failures()).expect("open");
    assert_eq!(
        store.frames("t", &[(1, hash("a"))]).expect("frames"),
        [b"a".to_vec()]
    );
    let txn = store.db.get().expect("open").begin_read().expect("read");
    let names: Vec<String> = txn
        .list_tables()
        .expect("tables")
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert_eq!(names, ["messages"]);
}
