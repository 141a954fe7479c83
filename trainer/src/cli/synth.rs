//! `crosskd synth`: write the synthetic detection benchmark (COCO format).

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;

use crate::data::synth::{generate, Aspect, ImageFormat, SynthConfig, MAX_CLASSES};

/// Image shape on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AspectArg {
    /// SIZE × SIZE.
    Square,
    /// Random width/height ratio in [0.75, 1.33], long side = SIZE.
    Random,
}

/// Image format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Lossless PNG.
    Png,
    /// JPEG (see --jpeg-quality).
    Jpeg,
}

/// `crosskd synth` arguments. Defaults are the benchmark's ([`SynthConfig::default`]).
#[derive(clap::Args, Debug)]
#[command(
    about = "Write the synthetic detection benchmark: OUT/{train,val}.json (COCO) + OUT/{train,val}/*.png",
    after_help = "Classes: disc, ring, triangle, square, cross, star, diamond, ellipse \
                  (+ hexagon, crescent, arrow, chevron with --classes up to 12).\n\
                  --shift: other background families (Voronoi cells, marble) and a warm colour cast.\n\
                  Same seed and options give byte-identical files."
)]
pub struct SynthArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of training images.
    #[arg(long, default_value_t = 2000)]
    pub train: usize,
    /// Number of validation images.
    #[arg(long, default_value_t = 500)]
    pub val: usize,
    /// Image size in pixels (long side with --aspect random).
    #[arg(long, default_value_t = 320)]
    pub size: u32,
    /// Global seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of object classes (1..=12; the default 8 are the benchmark).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=MAX_CLASSES as i64))]
    pub classes: u16,
    /// Domain-shifted variant: other backgrounds and a warm colour cast.
    #[arg(long)]
    pub shift: bool,
    /// Square images or random aspect ratio.
    #[arg(long, value_enum, default_value = "square")]
    pub aspect: AspectArg,
    /// Per-image probability of one crowd region (a dense same-class cluster
    /// annotated as a single iscrowd=1 box).
    #[arg(long, default_value_t = 0.0)]
    pub crowd_prob: f32,
    /// Image file format.
    #[arg(long, value_enum, default_value = "png")]
    pub format: FormatArg,
    /// JPEG quality (1..=100).
    #[arg(long, default_value_t = 92)]
    pub jpeg_quality: u8,
    /// Object-size multiplier on top of the image-size scaling (0.25..=4; 1 = COCO's
    /// size mix at this image size, >1 = larger objects for tiny images).
    #[arg(long, default_value_t = 1.0)]
    pub object_scale: f32,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

impl SynthArgs {
    /// The library config these arguments describe.
    pub fn config(&self) -> SynthConfig {
        SynthConfig {
            train: self.train,
            val: self.val,
            size: self.size,
            seed: self.seed,
            classes: usize::from(self.classes),
            aspect: match self.aspect {
                AspectArg::Square => Aspect::Square,
                AspectArg::Random => Aspect::Random,
            },
            shift: self.shift,
            crowd_prob: self.crowd_prob,
            format: match self.format {
                FormatArg::Png => ImageFormat::Png,
                FormatArg::Jpeg => ImageFormat::Jpeg,
            },
            jpeg_quality: self.jpeg_quality,
            object_scale: self.object_scale,
            ..SynthConfig::default()
        }
    }
}

/// Run `crosskd synth`.
pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let cfg = args.config();
    let s = generate(&cfg, &args.out, !args.quiet)
        .with_context(|| format!("generating the synthetic dataset in {}", args.out.display()))?;
    for split in [&s.train, &s.val] {
        let n = split.size_mix.iter().sum::<usize>().max(1) as f64;
        let pct = |i: usize| 100.0 * split.size_mix[i] as f64 / n;
        println!(
            "{}: {} images, {} objects ({:.1}/image; small {:.0}% medium {:.0}% large {:.0}%), \
             {} crowds, {} dropped as >{:.0}% occluded",
            split.annotation_file.display(),
            split.images,
            split.objects,
            split.objects as f64 / split.images.max(1) as f64,
            pct(0),
            pct(1),
            pct(2),
            split.crowds,
            split.dropped_occluded,
            100.0 * cfg.max_occlusion,
        );
    }
    println!(
        "{} images in {:.1} s ({:.0} images/s); classes: {}",
        s.images(),
        s.elapsed.as_secs_f64(),
        s.images_per_sec(),
        s.categories.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SynthArgs,
    }

    #[test]
    fn defaults_match_the_library_and_flags_parse() {
        let w = Wrapper::parse_from(["synth", "--out", "d"]);
        assert_eq!(w.args.config(), SynthConfig::default());
        let w = Wrapper::parse_from([
            "synth",
            "--out",
            "d",
            "--train",
            "5",
            "--val",
            "1",
            "--size",
            "64",
            "--seed",
            "3",
            "--classes",
            "4",
            "--shift",
            "--aspect",
            "random",
            "--crowd-prob",
            "0.1",
            "--format",
            "jpeg",
            "--object-scale",
            "2",
        ]);
        let c = w.args.config();
        assert_eq!(
            (c.train, c.val, c.size, c.seed, c.classes),
            (5, 1, 64, 3, 4)
        );
        assert!(c.shift && c.aspect == Aspect::Random && c.format == ImageFormat::Jpeg);
        assert_eq!(c.object_scale, 2.0);
        assert!(Wrapper::try_parse_from(["synth", "--out", "d", "--classes", "13"]).is_err());
    }
}
