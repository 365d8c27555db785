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

/// Makes every image of `m` for this host present and tagged.
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
        if existing.contains_key(&id) {
            if engine
                .image_id(&img.name)
                .map_err(|e| bundle_format::error_text(&e))?
                .as_deref()
                != Some(id.as_str())
            {
                engine
                    .tag(&id, &img.name)
                    .map_err(|e| bundle_format::error_text(&e))?;
            }
            continue;
        }
        if let Some(site) = &source {
            pull(engine, site, img, &id, report)?;
            existing.insert(id, Vec::new());
            loaded.push(img.name.clone());
            continue;
        }
        let diff_ids = config_diff_ids(sd, img)?;
        let skip = if engine.skips_present_layers() {
            layers_present(&existing, &diff_ids)
        } else {
            0
        };
        report.step(&format!(
            "loading {} ({} of {} layers new)",
            img.name,
            img.layers.len() - skip,
            img.layers.len()
        ));
        engine
            .load(&mut |w| match store {
                Store::Classic => write_docker_archive(w, sd, img, skip),
                Store::Containerd => write_oci_archive(w, sd, img),
            })
            .map_err(|e| format!("{}: {}", img.name, bundle_format::error_text(&e)))?;
        let got = engine
            .image_id(&img.name)
            .map_err(|e| bundle_format::error_text(&e))?;
        if got.as_deref() != Some(id.as_str()) {
            return Err(format!(
                "{}: after load the engine reports image {}, expected {id}",
                img.name,
                got.unwrap_or_else(|| "nothing".into())
            ));
        }
        existing.insert(id, diff_ids);
        loaded.push(img.name.clone());
    }
    Ok((out, loaded))
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
    use fixtures::fake_engine::FakeEngine;
    use rstest::rstest;

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
