/// The Delta Activations evaluation of a teacher pool (arXiv 2509.04442): for each representation of the
/// pool's adapters, the silhouette score with cosine distance over domain labels, at the level of every kept checkpoint
/// (each one a point labelled with its task's domain, as Delta Activations does) and of tasks (final checkpoints only);
/// and the additivity of the mixture tasks' final embeddings over their components'.
module LLGBM.Algebra.DeltaQuality

/// One adapter of the pool with its embedding under some representation.
type EmbeddedAdapter = {
    /// The task the adapter was trained on.
    Task: string
    /// The task's domain (the cluster label).
    Domain: string
    /// The training step it was kept at.
    Step: int
    /// Whether it is its task's final (last kept) checkpoint.
    Final: bool
    /// The embedding.
    Vector: float32[]
}

/// The pool's adapters under one representation.
type Representation = {
    /// A short identifier (`delta-activation`, `lora-weights-ab`, …).
    Name: string
    /// What the vectors are, in words.
    Description: string
    /// Every adapter, mixtures included.
    Points: EmbeddedAdapter[]
}

/// A mixture task and the tasks it mixes.
type Mixture = {
    /// The mixture task's name.
    Name: string
    /// Its component tasks.
    Components: string[]
}

/// The mean silhouette of one domain's points.
type DomainSilhouette = {
    /// The domain.
    Domain: string
    /// Its points.
    Points: int
    /// The mean silhouette of its points.
    Silhouette: float
}

/// The silhouette score of one representation at one level.
type SilhouetteRow = {
    /// The representation's name.
    Representation: string
    /// `checkpoint` (every kept checkpoint a point) or `task` (final checkpoints only).
    Level: string
    /// The number of points.
    Points: int
    /// The domains (cluster labels), in order of first appearance.
    Domains: string[]
    /// The silhouette score with cosine distance over the domains.
    Silhouette: float
    /// The mean silhouette per domain.
    PerDomain: DomainSilhouette[]
}

/// The additivity of one mixture under one representation (final checkpoints).
type AdditivityRow = {
    /// The representation's name.
    Representation: string
    /// The mixture task.
    Mixture: string
    /// Its components, in order.
    Components: string[]
    /// cos(mixture, Σ components).
    WithSum: float
    /// cos(mixture, component i).
    WithComponents: float[]
    /// The best single component's cosine.
    BestSingle: float
    /// `WithSum` − `BestSingle`.
    Gain: float
}

/// A representation's name, description and dimension.
type RepresentationSummary = {
    /// Its name.
    Name: string
    /// What the vectors are.
    Description: string
    /// The length of its vectors.
    Dimension: int
}

/// The whole evaluation.
type Report = {
    /// The representations, in order.
    Representations: RepresentationSummary[]
    /// Per representation, the checkpoint-level row then the task-level row.
    Silhouettes: SilhouetteRow[]
    /// Per representation, one row per mixture whose tasks all have adapters.
    Additivity: AdditivityRow[]
    /// Mixtures left out of the additivity test because the mixture or a component has no adapter.
    SkippedMixtures: string[]
}

/// The silhouette row of `points` at `level` (cosine distance, domain labels).
let silhouetteRow (representation: string) (level: string) (points: EmbeddedAdapter[]) : SilhouetteRow =
    let labels = points |> Array.map _.Domain
    let domains = Array.distinct labels

    if domains.Length < 2 then
        raise (
            LLGBM.LlgbmException(
                $"{representation} ({level}): the silhouette needs adapters of at least 2 domains, found {domains.Length}."
            )
        )

    let samples =
        Clustering.silhouetteSamplesOfDistances (Clustering.cosineDistanceMatrix (points |> Array.map _.Vector)) labels

    {
        Representation = representation
        Level = level
        Points = points.Length
        Domains = domains
        Silhouette = Array.average samples
        PerDomain =
            domains
            |> Array.map (fun d ->
                let mine =
                    Array.zip labels samples |> Array.filter (fun (l, _) -> l = d) |> Array.map snd

                {
                    Domain = d
                    Points = mine.Length
                    Silhouette = Array.average mine
                })
    }

/// The checkpoint-level and task-level silhouette rows of a representation, leaving out the mixtures' adapters (a
/// mixture belongs to two domains).
let silhouettes (mixtures: Mixture[]) (representation: Representation) : SilhouetteRow[] =
    let mixed = mixtures |> Array.map _.Name |> Set.ofArray

    let points =
        representation.Points |> Array.filter (fun p -> not (mixed.Contains p.Task))

    [|
        silhouetteRow representation.Name "checkpoint" points
        silhouetteRow representation.Name "task" (points |> Array.filter _.Final)
    |]

/// The final embedding of each task of a representation.
let private finals (representation: Representation) =
    representation.Points
    |> Array.filter _.Final
    |> Array.map (fun p -> p.Task, p.Vector)
    |> dict

/// Whether every task of `mixture` (the mixture and its components) has a final adapter in `representation`.
let covers (representation: Representation) (mixture: Mixture) =
    let f = finals representation

    Array.append [| mixture.Name |] mixture.Components |> Array.forall f.ContainsKey

/// The additivity rows of a representation: one per mixture it covers, on final checkpoints.
let additivityRows (mixtures: Mixture[]) (representation: Representation) : AdditivityRow[] =
    let f = finals representation

    mixtures
    |> Array.filter (covers representation)
    |> Array.map (fun m ->
        let a = Clustering.additivity f[m.Name] (m.Components |> Array.map (fun c -> f[c]))

        {
            Representation = representation.Name
            Mixture = m.Name
            Components = m.Components
            WithSum = a.WithSum
            WithComponents = a.WithComponents
            BestSingle = a.BestSingle
            Gain = a.Gain
        })

/// The report over several representations of the same pool.
let report (mixtures: Mixture[]) (representations: Representation[]) : Report =
    let skipped =
        mixtures
        |> Array.filter (fun m -> representations |> Array.exists (fun r -> not (covers r m)))
        |> Array.map _.Name

    {
        Representations =
            representations
            |> Array.map (fun r -> {
                Name = r.Name
                Description = r.Description
                Dimension = if r.Points.Length = 0 then 0 else r.Points[0].Vector.Length
            })
        Silhouettes = representations |> Array.collect (silhouettes mixtures)
        Additivity = representations |> Array.collect (additivityRows mixtures)
        SkippedMixtures = skipped
    }
