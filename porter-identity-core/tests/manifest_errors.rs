use porter_identity_core::*;

fn show(label: &str, y: &str) {
    let t = std::time::Instant::now();
    let r = AppManifest::from_yaml_str(y);
    let el = t.elapsed();
    match r {
        Ok(m) => println!(
            "== {label} OK ({el:?}): {:?}",
            m.services()
                .iter()
                .map(|s| (s.name(), s.connections().len()))
                .collect::<Vec<_>>()
        ),
        Err(e) => {
            let m = e.manifest().unwrap();
            println!(
                "== {label} ({el:?})\n   path={:?} svc={:?} ci={:?} field={:?} loc={:?}\n   problem={}\n   fix={}\n   display={}",
                m.path,
                m.service,
                m.connection_index,
                m.field,
                m.location,
                &m.problem[..m.problem.len().min(300)],
                m.fix,
                {
                    let s = e.to_string();
                    s[..s.len().min(400)].to_string()
                }
            );
        }
    }
}

#[test]
fn explore() {
    let cases: Vec<(&str, String)> = vec![
        ("nan env", "env: {A: .nan}\nservices: []\n".into()),
        ("nan cpu", "services:\n  - name: api\n    cpuCores: .nan\n".into()),
        ("AWSRole", "services:\n  - name: api\n    connections:\n      - type: AWSRole\n        role: x\n".into()),
        ("dup key conn", "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: a\n        role: b\n".into()),
        ("bom only", "\u{feff}".into()),
        ("bom comment", "\u{feff}# c\n".into()),
        ("name later line", "services:\n  - run: x\n    port: 80\n    name: API\n".into()),
        ("unicode col", "services:\n  - name: api\n    connections:\n      - {type: awsRole, role: \"ééé é\"}\n".into()),
        ("svc list-of-lists", "services:\n  - - name: api\n".into()),
        ("role null", "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role:\n".into()),
        ("type empty", "services:\n  - name: api\n    connections:\n      - type: \"\"\n".into()),
        ("name empty", "services:\n  - name: \"\"\n".into()),
        ("64 anchors ok", { let mut s = String::new(); for i in 0..70 { s += &format!("a{i}: &a{i} x\n"); } s += "services: []\n"; s }),
        ("70 aliases", { let mut s = String::from("x: &x v\ny: ["); for _ in 0..70 { s += "*x,"; } s += "]\nservices: []\n"; s }),
        ("long line", format!("services:\n  - name: {}\n", "a".repeat(3_000_000))),
        ("services string", "services: hello\n".into()),
        ("services map", "services:\n  api:\n    name: x\n".into()),
        ("services number", "version: v2\nservices: 42\n".into()),
        ("service string", "services:\n  - api\n".into()),
        ("service string 2nd", "services:\n  - name: web\n  - api\n".into()),
        ("name number", "services:\n  - name: 42\n".into()),
        ("name list", "services:\n  - name: [a]\n".into()),
        ("connections map", "services:\n  - name: api\n    connections:\n      type: awsRole\n      role: r\n".into()),
        ("connection string", "services:\n  - name: api\n    connections:\n      - awsRole\n".into()),
        ("role list", "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: [a]\n".into()),
        ("role number", "services:\n  - name: web\n  - name: api\n    connections:\n      - type: cloudSql\n      - type: awsRole\n        role: 42\n".into()),
        ("identityName bool", "services:\n  - name: api\n    connections:\n      - type: azureManagedIdentity\n        identityName: true\n        resourceGroup: rg\n".into()),
        ("no services", "version: v2\nname: x\n".into()),
        ("no name", "services:\n  - run: x\n".into()),
        ("no type", "services:\n  - name: api\n    connections:\n      - role: r\n".into()),
        ("no role", "services:\n  - name: api\n    connections:\n      - type: awsRole\n".into()),
        ("bad partition", "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: arn:aws-iso:iam::123456789012:role/x\n".into()),
        ("empty", "".into()),
        ("comments", "# hi\n\n  # there\n".into()),
        ("{{{", "{{{".into()),
        ("tabs", "services:\n\t- name: api\n\t\tconnections:\n".into()),
        ("garbage", "\u{1}\u{2}\u{0}\u{7f}ÿþ\u{fffd}: : : -".into()),
        ("top list", "- name: api\n".into()),
        ("deep", "[".repeat(10000)),
        ("deep map", "a: ".to_string() + &"{b: ".repeat(10000)),
        ("bomb", "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\nservices: []\n".into()),
        ("multi doc", "services: []\n---\nservices: []\n".into()),
        ("dup type", "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: a\n      - type: awsRole\n        role: b\n".into()),
        ("dup svc", "services:\n  - name: api\n  - name: web\n  - name: api\n".into()),
        ("loc mismatch", "services:\n  - name: api\n    connections:\n      - type: awsRole\n        role: bad role\n  - name: web\n    connections: oops\n".into()),
        ("null svc", "services:\n  -\n".into()),
        ("services null", "services:\n".into()),
        ("only ---", "---\n".into()),
        ("dup services key", "services: []\nservices: []\n".into()),
        ("big int", "services:\n  - name: api\n    connections:\n      - type: disk\n        size: 99999999999999999999999999\n".into()),
        ("nonstring key", "services:\n  - name: api\n    connections:\n      - type: disk\n        1: x\n".into()),
        ("inf", "services:\n  - name: api\n    connections:\n      - type: disk\n        size: .inf\n".into()),
        ("ok", "version: v2\nbuild: {method: docker}\nenv: {A: b}\npredeploy: {run: x}\nservices:\n  - name: api\n    connections:\n      - type: cloudSql\n        config: {a: {b: 1}}\n      - type: awsRole\n        role: r\n  - name: web\n".into()),
        ("role alias", "x: &r arn:aws:iam::123456789012:role/r\nservices:\n  - name: api\n    connections:\n      - type: awsRole\n        role: *r\n".into()),
        ("conn alias", "x: &c {type: awsRole, role: \"bad role\"}\nservices:\n  - name: api\n    connections:\n      - *c\n".into()),
        ("merge", "x: &c {type: awsRole, role: r}\nservices:\n  - name: api\n    connections:\n      - <<: *c\n".into()),
        ("flow conns", "services: [{name: api, connections: [{type: awsRole, role: \"a b\"}]}]\n".into()),
        ("bom", "\u{feff}services:\n  - name: api\n".into()),
        ("crlf", "services:\r\n  - name: api\r\n    connections:\r\n      - type: awsRole\r\n        role: a b\r\n".into()),
    ];
    for (l, y) in &cases {
        show(l, y);
    }
    let dir = std::env::temp_dir().join(format!("pi-explore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("porter.yaml");
    for (l, content) in [
        (
            "file utf8 cut",
            format!("services: []\n#{}", "é".repeat(3_000_000)).into_bytes(),
        ),
        (
            "file ascii big",
            format!("services: []\n# {}", "a".repeat(5_000_000)).into_bytes(),
        ),
        ("file latin1", b"services: []\n# caf\xe9\n".to_vec()),
        ("file bad", b"services:\n  - name: API\n".to_vec()),
    ] {
        std::fs::write(&f, &content).unwrap();
        match AppManifest::from_path(&f) {
            Ok(_) => println!("== {l} OK"),
            Err(e) => println!(
                "== {l}: {e}\n   {:?}",
                e.manifest().map(|m| (&m.file, &m.path, m.location))
            ),
        }
    }
    match AppManifest::from_path(&dir.join("missing.yaml")) {
        Ok(_) => println!("missing OK"),
        Err(e) => println!("== missing: {e}"),
    }
    match AppManifest::from_path(&dir) {
        Ok(_) => println!("dir OK"),
        Err(e) => println!("== dir: {e}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let big = "a".repeat(50 * 1024 * 1024);
    show("50MB", &big);
    let just = format!("services: []\n# {}", "a".repeat(MAX_MANIFEST_BYTES - 15));
    show("4MiB exactly", &just);
}
