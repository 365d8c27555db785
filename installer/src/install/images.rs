//! Images: load what the engine lacks, streaming a docker-archive from the
//! blob store, and tag what it has.

use super::*;

/// Images of a release: (name, image ID) of each, and the names loaded now.
pub type Loaded = (Vec<(String, String)>, Vec<String>);

/// How many bottom layers of an image with `diff_ids` the engine has
/// already: the longest common prefix with an image it holds. A layer is
/// its content in the context of those below it (the chain ID), so only a
/// prefix counts, never a layer that matches higher up.
pub fn layers_present(existing: &BTreeMap<String, Vec<String>>, diff_ids: &[String]) -> usize {
    existing
        .values()
        .map(|have| {
            have.iter()
                .zip(diff_ids)
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Makes every image of `m` for this host present and tagged:
///
/// 1. an image the engine has is tagged, one the release's site registry
///    has is pulled, in the manifest's order;
/// 2. the rest are loaded from the blob store, those that share no layer
///    at once ([`lanes`]), each leaving out the bottom layers the engine
///    has or an earlier load of its lane brings;
/// 3. a second name for an image loaded in 2. is tagged.
pub fn ensure_images(
    sd: &StateDir,
    engine: &dyn Engine,
    m: &Manifest,
    report: &dyn Report,
) -> Result<Loaded, String> {
    let (os, arch) = host_platform();
    let store = engine.store().map_err(|e| bundle_format::error_text(&e))?;
    let mut existing = engine.images().map_err(|e| bundle_format::error_text(&e))?;
    let source = sd
        .release_registry(&m.version)
        .map_err(|e| bundle_format::error_text(&e))?;
    let mut out = Vec::new();
    let mut loaded = Vec::new();
    let mut loads = Vec::new();
    let mut later_tags = Vec::new();
    let mut seen = BTreeSet::new();
    for img in m
        .images
        .iter()
        .filter(|i| i.platform.os == os && i.platform.arch == arch)
    {
        if !seen.insert(img.name.clone()) {
            continue;
        }
        let id = store.image_id(img).to_string();
        out.push((img.name.clone(), id.clone()));
        if loads.iter().any(|l: &Load| l.id == id) {
            later_tags.push((id, img.name.clone()));
            continue;
        }
        if existing.contains_key(&id) {
            tag_if_needed(engine, &id, &img.name)?;
            continue;
        }
        loaded.push(img.name.clone());
        if let Some(site) = &source {
            pull(engine, site, img, &id, report)?;
            existing.insert(id, Vec::new());
            continue;
        }
        let diff_ids = config_diff_ids(sd, img)?;
        // What the engine will have when this image's turn comes: its lane
        // loads every earlier image it shares a layer with first.
        let skip = if engine.skips_present_layers() {
            layers_present(&existing, &diff_ids)
        } else {
            0
        };
        existing.insert(id.clone(), diff_ids.clone());
        loads.push(Load {
            img,
            id,
            diff_ids,
            skip,
        });
    }
    load_all(sd, engine, store, &loads, report)?;
    for (id, name) in later_tags {
        tag_if_needed(engine, &id, &name)?;
    }
    Ok((out, loaded))
}

/// One image to load from the blob store.
struct Load<'a> {
    img: &'a ImageEntry,
    /// The ID the engine will give it.
    id: String,
    diff_ids: Vec<String>,
    /// Bottom layers the engine will have: left out of the archive.
    skip: usize,
}

fn tag_if_needed(engine: &dyn Engine, id: &str, name: &str) -> Result<(), String> {
    let now = engine
        .image_id(name)
        .map_err(|e| bundle_format::error_text(&e))?;
    if now.as_deref() == Some(id) {
        return Ok(());
    }
    engine
        .tag(id, name)
        .map_err(|e| bundle_format::error_text(&e))
}

/// Which loads run one after another, as lists of indices into `images`
/// (each given as its bytes and the keys of its layers: blob digests and
/// diff IDs). Images that share a layer go in one lane, in their order, so
/// that a later one can leave out what an earlier one loaded and two loads
/// never write one layer at once. The groups are spread over at most `n`
/// lanes, the largest first onto the lane with the fewest bytes.
pub fn lanes(images: &[(u64, Vec<&str>)], n: usize) -> Vec<Vec<usize>> {
    // Union-find over the images, joined by a shared key.
    let mut parent: Vec<usize> = (0..images.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (_, keys)) in images.iter().enumerate() {
        for k in keys {
            let j = *first.entry(k).or_insert(i);
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut groups: BTreeMap<usize, (u64, Vec<usize>)> = BTreeMap::new();
    for (i, (bytes, _)) in images.iter().enumerate() {
        let g = groups.entry(root(&mut parent, i)).or_default();
        g.0 += bytes;
        g.1.push(i);
    }
    let mut groups: Vec<(u64, Vec<usize>)> = groups.into_values().collect();
    // Largest first; a tie keeps the manifest's order.
    groups.sort_by(|a, b| b.0.cmp(&a.0).then(a.1[0].cmp(&b.1[0])));
    let mut lanes: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); n.max(1).min(images.len())];
    for (bytes, members) in groups {
        if let Some(lane) = lanes.iter_mut().min_by_key(|l| l.0) {
            lane.0 += bytes;
            lane.1.extend(members);
        }
    }
    let mut lanes: Vec<Vec<usize>> = lanes
        .into_iter()
        .map(|(_, mut l)| {
            l.sort_unstable();
            l
        })
        .filter(|l| !l.is_empty())
        .collect();
    lanes.sort();
    lanes
}

/// Loads `loads`, the lanes at once; after a failure no lane starts
/// another load, and the first failure in the manifest's order is the
/// error.
fn load_all(
    sd: &StateDir,
    engine: &dyn Engine,
    store: Store,
    loads: &[Load],
    report: &dyn Report,
) -> Result<(), String> {
    let keyed: Vec<(u64, Vec<&str>)> = loads
        .iter()
        .map(|l| {
            let blobs = l.img.layers.iter().map(|d| d.digest.as_str());
            let keys = blobs.chain(l.diff_ids.iter().map(String::as_str));
            (l.img.layers.iter().map(|d| d.size).sum(), keys.collect())
        })
        .collect();
    let lanes = lanes(&keyed, engine.load_lanes());
    if lanes.len() > 1 {
        report.step(&format!(
            "loading {} images, {} at a time",
            loads.len(),
            lanes.len()
        ));
    }
    let failed = AtomicBool::new(false);
    let mut results: Vec<(usize, Result<(), String>)> = std::thread::scope(|s| {
        let running: Vec<_> = lanes
            .iter()
            .map(|lane| {
                let failed = &failed;
                s.spawn(move || {
                    let mut done = Vec::new();
                    for &i in lane {
                        if failed.load(Ordering::SeqCst) {
                            break;
                        }
                        let r = load_one(sd, engine, store, &loads[i], report);
                        failed.fetch_or(r.is_err(), Ordering::SeqCst);
                        done.push((i, r));
                    }
                    done
                })
            })
            .collect();
        running
            .into_iter()
            .flat_map(|t| {
                t.join()
                    .unwrap_or_else(|_| vec![(usize::MAX, Err("a load thread panicked".into()))])
            })
            .collect()
    });
    results.sort_by_key(|r| r.0);
    results.into_iter().try_for_each(|(_, r)| r)
}

fn load_one(
    sd: &StateDir,
    engine: &dyn Engine,
    store: Store,
    load: &Load,
    report: &dyn Report,
) -> Result<(), String> {
    let img = load.img;
    report.step(&format!(
        "loading {} ({} of {} layers new)",
        img.name,
        img.layers.len() - load.skip,
        img.layers.len()
    ));
    engine
        .load(&mut |w| match store {
            Store::Classic => write_docker_archive(w, sd, img, load.skip),
            Store::Containerd => write_oci_archive(w, sd, img),
        })
        .map_err(|e| format!("{}: {}", img.name, bundle_format::error_text(&e)))?;
    let got = engine
        .image_id(&img.name)
        .map_err(|e| bundle_format::error_text(&e))?;
    if got.as_deref() != Some(load.id.as_str()) {
        return Err(format!(
            "{}: after load the engine reports image {}, expected {}",
            img.name,
            got.unwrap_or_else(|| "nothing".into()),
            load.id
        ));
    }
    Ok(())
}

/// Pulls `img` from the site registry by its pinned digest and tags it
/// with the name compose uses, checking the ID the engine gives it.
fn pull(
    engine: &dyn Engine,
    site: &Site,
    img: &ImageEntry,
    id: &str,
    report: &dyn Report,
) -> Result<(), String> {
    let reference = site
        .pull_ref(img)
        .map_err(|e| format!("{}: {e}", img.name))?;
    report.step(&format!("pulling {} from {reference}", img.name));
    engine
        .pull(&reference)
        .map_err(|e| format!("{}: {}", img.name, bundle_format::error_text(&e)))?;
    let got = engine
        .image_id(&reference)
        .map_err(|e| bundle_format::error_text(&e))?;
    if got.as_deref() != Some(id) {
        return Err(format!(
            "{}: the engine pulled {reference} as image {}, expected {id}",
            img.name,
            got.unwrap_or_else(|| "nothing".into())
        ));
    }
    engine
        .tag(id, &img.name)
        .map_err(|e| bundle_format::error_text(&e))
}

pub(crate) fn config_diff_ids(sd: &StateDir, img: &ImageEntry) -> Result<Vec<String>, String> {
    let p = sd.blob(&img.config.digest);
    let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(bundle_format::oci::ImageConfig::parse(&b, img)?
        .rootfs
        .diff_ids)
}

/// Streams a docker-archive of one image from the blob store (what the
/// classic store loads), leaving out the first `skip` layer files (the
/// engine has those layers).
pub fn write_docker_archive(
    w: &mut dyn Write,
    sd: &StateDir,
    img: &ImageEntry,
    skip: usize,
) -> io::Result<()> {
    let manifest = [bundle_format::oci::DockerArchiveImage::of(img)];
    let mut tar = TarWriter::new(w, 0);
    tar.file("manifest.json", &serde_json::to_vec(&manifest)?, 0o644)?;
    let blobs = std::iter::once(&img.config).chain(img.layers.iter().skip(skip));
    write_blobs(&mut tar, sd, blobs)?;
    tar.finish()?;
    Ok(())
}

/// Streams an OCI archive of one image from the blob store (what the
/// containerd store loads): the registry's own manifest, so the image's ID
/// is the pinned manifest digest and `RepoDigests` lists it; every blob,
/// since containerd's import wants every blob the manifest names.
pub fn write_oci_archive(w: &mut dyn Write, sd: &StateDir, img: &ImageEntry) -> io::Result<()> {
    let name = manifest_schema::ImageRef::parse(&img.name)
        .map(|r| r.canonical_name())
        .unwrap_or_else(|_| img.name.clone());
    let index = bundle_format::oci::OciIndex::single(&img.manifest, &name);
    let mut tar = TarWriter::new(w, 0);
    tar.file("oci-layout", layout::OCI_LAYOUT_CONTENT.as_bytes(), 0o644)?;
    tar.file("index.json", &serde_json::to_vec(&index)?, 0o644)?;
    write_blobs(&mut tar, sd, img.blobs())?;
    tar.finish()?;
    Ok(())
}

/// Each blob from the store as `blobs/sha256/<hex>`, streamed.
fn write_blobs<'a, W: Write>(
    tar: &mut TarWriter<W>,
    sd: &StateDir,
    blobs: impl Iterator<Item = &'a manifest_schema::Descriptor>,
) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    for d in blobs {
        let mut f = std::fs::File::open(sd.blob(&d.digest))?;
        tar.header(&bundle_format::oci::blob_path(&d.digest), d.size, 0o644)?;
        let mut left = d.size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("blob {} is shorter than recorded", d.digest),
                ));
            }
            tar.data(&buf[..n])?;
            left -= n as u64;
        }
        tar.pad(d.size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::Stderr;
    use fixtures::fake_engine::FakeEngine;
    use rstest::rstest;
    use sha2::{Digest as _, Sha256};

    fn manifest() -> Manifest {
        serde_json::from_str(include_str!("../../../fuzz/seeds/manifest/manifest.json")).unwrap()
    }

    /// A state dir whose release of `m` records `site` as its image source.
    fn registry_release(m: &Manifest, site: &str) -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let rel = sd.release_dir(&m.version);
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::write(rel.join(state::REGISTRY_FILE), format!("{site}\n")).unwrap();
        (dir, sd)
    }

    #[test]
    fn a_registry_release_pulls_each_image_by_its_pinned_digest_and_tags_it() {
        let m = manifest();
        let (_d, sd) = registry_release(&m, "reg.example:5000/acme");
        let e = FakeEngine::default();
        let (os, arch) = host_platform();
        let mine: Vec<&ImageEntry> = m
            .images
            .iter()
            .filter(|i| i.platform.os == os && i.platform.arch == arch)
            .collect();
        for img in &mine {
            let site = Site::parse("reg.example:5000/acme").unwrap();
            e.registry.borrow_mut().insert(
                site.pull_ref(img).unwrap(),
                (img.config.digest.to_string(), vec![]),
            );
        }
        let (ids, loaded) =
            ensure_images(&sd, &e, &m, &crate::install::Stderr { quiet: true }).unwrap();
        assert!(
            e.loads.borrow().is_empty(),
            "nothing loaded from the bundle"
        );
        let pulls = e.pulls.borrow().clone();
        assert_eq!(pulls.len(), mine.len());
        for img in &mine {
            assert!(
                pulls.contains(&format!(
                    "reg.example:5000/acme/{}@{}",
                    manifest_schema::ImageRef::parse(&img.name)
                        .unwrap()
                        .repository,
                    img.manifest.digest
                )),
                "{pulls:?}"
            );
            assert_eq!(e.tags.borrow()[&img.name], img.config.digest.to_string());
        }
        assert_eq!(loaded.len(), mine.len());
        assert_eq!(ids.len(), mine.len());

        // Present now: a second run pulls nothing.
        ensure_images(&sd, &e, &m, &crate::install::Stderr { quiet: true }).unwrap();
        assert_eq!(e.pulls.borrow().len(), mine.len());
    }

    #[test]
    fn a_pull_that_gives_another_image_is_refused_naming_it() {
        let m = manifest();
        let (_d, sd) = registry_release(&m, "reg.example");
        let e = FakeEngine::default();
        let site = Site::parse("reg.example").unwrap();
        for img in &m.images {
            e.registry.borrow_mut().insert(
                site.pull_ref(img).unwrap(),
                ("sha256:feedface".into(), vec![]),
            );
        }
        let err = ensure_images(&sd, &e, &m, &crate::install::Stderr { quiet: true }).unwrap_err();
        assert!(err.contains("as image sha256:feedface, expected"), "{err}");
        assert!(
            e.tags.borrow().keys().all(|k| k.contains('@')),
            "no name was tagged"
        );
    }

    /// Stores an image with plain layers `layers` in `sd`'s blob store.
    fn stored_image(sd: &StateDir, name: &str, layers: &[&str]) -> ImageEntry {
        let put = |bytes: &[u8], media_type: &str| {
            let digest = Digest::from_sha256_bytes(&Sha256::digest(bytes).into());
            let p = sd.blob(&digest);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
            manifest_schema::Descriptor {
                media_type: media_type.into(),
                digest,
                size: bytes.len() as u64,
            }
        };
        let layers: Vec<_> = layers
            .iter()
            .map(|l| put(l.as_bytes(), "application/vnd.oci.image.layer.v1.tar"))
            .collect();
        let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.to_string()).collect();
        let config = put(
            &serde_json::to_vec(
                &serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}}),
            )
            .unwrap(),
            "application/vnd.oci.image.config.v1+json",
        );
        let (os, arch) = host_platform();
        ImageEntry {
            name: name.into(),
            source: format!("reg.example/{name}"),
            platform: manifest_schema::Platform {
                os,
                arch,
                variant: None,
            },
            manifest: put(
                name.as_bytes(),
                "application/vnd.oci.image.manifest.v1+json",
            ),
            config,
            layers,
        }
    }

    /// A manifest of the images `spec` names (`name=layer,layer;…`).
    fn stored(spec: &str) -> (tempfile::TempDir, StateDir, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path());
        let mut m = manifest();
        m.images = spec
            .split(';')
            .map(|i| {
                let (name, layers) = i.split_once('=').unwrap();
                stored_image(&sd, name, &layers.split(',').collect::<Vec<_>>())
            })
            .collect();
        (dir, sd, m)
    }

    /// The layer files a load's docker-archive carried: its blobs but the
    /// config.
    fn layer_files(archive: &[u8]) -> usize {
        let blobs = tar::Archive::new(archive)
            .entries()
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().unwrap().starts_with("blobs"))
            .count();
        blobs - 1
    }

    #[test]
    fn images_that_share_no_layer_load_at_once_and_each_is_checked() {
        let (_d, sd, m) = stored("a/x:1=a1,a2;b/y:1=b1;c/z:1=c1,c2,c3");
        let e = FakeEngine {
            lanes: 3,
            meet: 3,
            ..FakeEngine::default()
        };
        let (ids, loaded) = ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap();
        assert_eq!(e.running.borrow().1, 3, "three loads ran at once");
        assert_eq!(loaded, ["a/x:1", "b/y:1", "c/z:1"]);
        for (img, (name, id)) in m.images.iter().zip(&ids) {
            assert_eq!(name, &img.name);
            assert_eq!(id, &img.config.digest.to_string());
            assert_eq!(e.tags.borrow()[name], *id, "{name} tagged by its load");
        }
    }

    #[test]
    fn images_that_share_a_base_load_in_turn_and_the_later_leaves_it_out() {
        let (_d, sd, m) = stored("a/x:1=base,a2;b/y:1=base,b2;c/z:1=c1");
        let e = FakeEngine {
            lanes: 3,
            meet: 2,
            ..FakeEngine::default()
        };
        ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap();
        assert_eq!(e.running.borrow().1, 2, "two lanes: a then b, and c");
        let loads = e.loads.borrow();
        let of = |name: &str| {
            loads
                .iter()
                .find(|l| read_name(l) == name)
                .map(|l| layer_files(l))
                .unwrap()
        };
        assert_eq!(of("a/x:1"), 2);
        assert_eq!(of("b/y:1"), 1, "the shared base is left out");
        assert_eq!(of("c/z:1"), 1);
    }

    fn read_name(archive: &[u8]) -> String {
        let mut a = tar::Archive::new(archive);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v[0]["RepoTags"][0].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_failed_load_is_the_error_and_its_lane_starts_nothing_more() {
        let (_d, sd, m) = stored("a/x:1=s,a2;b/y:1=s,b2;c/z:1=c1");
        let e = FakeEngine {
            lanes: 2,
            fail_load: Some("a/x:1".into()),
            ..FakeEngine::default()
        };
        let err = ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap_err();
        assert!(err.starts_with("a/x:1: "), "{err}");
        assert!(err.contains("cannot load a/x:1"), "{err}");
        assert!(
            !e.tags.borrow().contains_key("b/y:1"),
            "b waits on a's base: not loaded after a failed"
        );
    }

    #[test]
    fn a_second_name_for_an_image_being_loaded_is_tagged_after_its_load() {
        let (_d, sd, mut m) = stored("a/x:1=a1");
        let mut alias = m.images[0].clone();
        alias.name = "a/x:latest".into();
        m.images.push(alias);
        let e = FakeEngine::default();
        let (_, loaded) = ensure_images(&sd, &e, &m, &Stderr { quiet: true }).unwrap();
        assert_eq!(loaded, ["a/x:1"]);
        assert_eq!(e.loads.borrow().len(), 1);
        assert_eq!(e.tags.borrow()["a/x:latest"], e.tags.borrow()["a/x:1"]);
    }

    #[rstest]
    #[case::unrelated_spread_over_lanes("1:a 1:b 1:c", 3, "0|1|2")]
    #[case::one_lane_keeps_the_order("1:a 1:b 1:c", 1, "0 1 2")]
    #[case::a_shared_layer_joins_them("1:a,s 1:b 1:c,s", 3, "0 2|1")]
    #[case::sharing_is_transitive("1:a,s 1:s,t 1:t 1:z", 4, "0 1 2|3")]
    #[case::largest_first_onto_the_emptiest("5:a 3:b 2:c 1:d", 2, "0 3|1 2")]
    #[case::no_more_lanes_than_images("1:a", 8, "0")]
    fn lanes_keep_images_that_share_a_layer_together(
        #[case] images: &str,
        #[case] n: usize,
        #[case] want: &str,
    ) {
        let images: Vec<(u64, Vec<&str>)> = images
            .split(' ')
            .map(|i| {
                let (bytes, keys) = i.split_once(':').unwrap();
                (bytes.parse().unwrap(), keys.split(',').collect())
            })
            .collect();
        let got: Vec<String> = lanes(&images, n)
            .iter()
            .map(|l| {
                l.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(got.join("|"), want);
    }

    fn ids(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[rstest]
    #[case::nothing_there("", "a b c", 0)]
    #[case::same_base("x a b | a b y", "a b c", 2)]
    #[case::whole_image("a b c", "a b c", 3)]
    #[case::match_higher_up_does_not_count("z b c", "a b c", 0)]
    #[case::longest_of_several("a | a b | q", "a b c", 2)]
    fn only_a_common_bottom_prefix_is_left_out(
        #[case] have: &str,
        #[case] want: &str,
        #[case] skip: usize,
    ) {
        let existing: BTreeMap<String, Vec<String>> = have
            .split('|')
            .filter(|x| !x.trim().is_empty())
            .enumerate()
            .map(|(i, x)| (format!("sha256:{i}"), ids(x)))
            .collect();
        assert_eq!(layers_present(&existing, &ids(want)), skip);
    }
}
