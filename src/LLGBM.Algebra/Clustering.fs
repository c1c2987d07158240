/// How well behavioural embeddings of adapters group by domain, and whether they add up: the two checks Delta
/// Activations (arXiv 2509.04442; docs/reference.md §6) uses to argue that delta activations are a good embedding of an
/// adapter. The silhouette score with cosine distance over domain labels is its clustering metric (reported averages:
/// delta activations 0.614, flattened adapter weights −0.043); the additivity test compares the embedding of an
/// adapter trained on a mixture of two tasks with the sum of the two tasks' embeddings.
module LLGBM.Algebra.Clustering

/// Cosine distance 1 − cos(a, b), clipped to [0, 2] against rounding; a zero vector is at distance 1 from everything
/// (its cosine is taken as 0, as in `Metrics.cosine`).
let cosineDistance (a: float32[]) (b: float32[]) : float =
    1.0 - Metrics.cosine a b |> max 0.0 |> min 2.0

/// The symmetric matrix of `distance` between every pair of points (zero diagonal); `distance` is called once per
/// unordered pair, so it must be symmetric.
let distanceMatrix (distance: float32[] -> float32[] -> float) (points: float32[][]) : float[,] =
    let n = points.Length
    let d = Array2D.zeroCreate n n

    for i in 0 .. n - 1 do
        for j in i + 1 .. n - 1 do
            let v = distance points[i] points[j]
            d[i, j] <- v
            d[j, i] <- v

    d

/// The cosine distance matrix of `points`: the same values as `distanceMatrix cosineDistance points` (the same sums in
/// the same order), with each vector's squared norm computed once. Points must share one length.
let cosineDistanceMatrix (points: float32[][]) : float[,] =
    let n = points.Length

    if n > 0 then
        let length = points[0].Length

        for p in points do
            if p.Length <> length then
                invalidArg (nameof points) $"cosineDistanceMatrix: vectors of length {length} and {p.Length}"

    let dot (a: float32[]) (b: float32[]) =
        let mutable s = 0.0

        for k in 0 .. a.Length - 1 do
            s <- s + float a[k] * float b[k]

        s

    let squares = points |> Array.map (fun p -> dot p p)
    let d = Array2D.zeroCreate n n

    for i in 0 .. n - 1 do
        for j in i + 1 .. n - 1 do
            let cos =
                if squares[i] = 0.0 || squares[j] = 0.0 then
                    0.0
                else
                    dot points[i] points[j] / sqrt (squares[i] * squares[j])

            let v = 1.0 - cos |> max 0.0 |> min 2.0
            d[i, j] <- v
            d[j, i] <- v

    d

/// The silhouette of each point given a precomputed distance matrix and a label per point (Rousseeuw 1987): with a
/// the mean distance to the other points of its own cluster and b the smallest mean distance to the points of another
/// cluster, s = (b − a) / max(a, b); a point alone in its cluster scores 0, and so does a point with a = b = 0. Needs
/// at least two distinct labels.
let silhouetteSamplesOfDistances (distances: float[,]) (labels: 'Label[]) : float[] =
    let n = labels.Length

    if Array2D.length1 distances <> n || Array2D.length2 distances <> n then
        invalidArg
            (nameof distances)
            $"silhouette: a {Array2D.length1 distances}×{Array2D.length2 distances} distance matrix for {n} labels"

    let clusters = labels |> Array.distinct

    if clusters.Length < 2 then
        invalidArg (nameof labels) $"silhouette: needs at least 2 distinct labels, found {clusters.Length}"

    let index = clusters |> Array.mapi (fun c l -> l, c) |> dict
    let cluster = labels |> Array.map (fun l -> index[l])
    let sizes = Array.zeroCreate clusters.Length

    for c in cluster do
        sizes[c] <- sizes[c] + 1

    Array.init n (fun i ->
        let own = cluster[i]

        if sizes[own] = 1 then
            0.0
        else
            let sums = Array.zeroCreate clusters.Length

            for j in 0 .. n - 1 do
                if j <> i then
                    sums[cluster[j]] <- sums[cluster[j]] + distances[i, j]

            let a = sums[own] / float (sizes[own] - 1)

            let b =
                seq {
                    for c in 0 .. clusters.Length - 1 do
                        if c <> own then
                            sums[c] / float sizes[c]
                }
                |> Seq.min

            let m = max a b
            if m = 0.0 then 0.0 else (b - a) / m)

/// The silhouette score: the mean of `silhouetteSamplesOfDistances` over all points.
let silhouetteOfDistances (distances: float[,]) (labels: 'Label[]) : float =
    silhouetteSamplesOfDistances distances labels |> Array.average

/// The silhouette score of labelled points under `distance` (assumed symmetric).
let silhouetteWith (distance: float32[] -> float32[] -> float) (points: float32[][]) (labels: 'Label[]) : float =
    if points.Length <> labels.Length then
        invalidArg (nameof labels) $"silhouette: {points.Length} points and {labels.Length} labels"

    silhouetteOfDistances (distanceMatrix distance points) labels

/// The silhouette score of labelled points under cosine distance: Delta Activations' clustering metric (scikit-learn's
/// `silhouette_score(X, labels, metric="cosine")`). 1 for tight clusters pointing in different directions, about 0 when
/// the labels do not show in the geometry, negative when points sit closer to another cluster than to their own.
let silhouette (points: float32[][]) (labels: 'Label[]) : float =
    if points.Length <> labels.Length then
        invalidArg (nameof labels) $"silhouette: {points.Length} points and {labels.Length} labels"

    silhouetteOfDistances (cosineDistanceMatrix points) labels

/// The additivity of a mixture's embedding over its components' embeddings.
type Additivity = {
    /// cos(mixture, Σ components).
    WithSum: float
    /// cos(mixture, component i), in the components' order.
    WithComponents: float[]
    /// The largest of `WithComponents`.
    BestSingle: float
    /// `WithSum` − `BestSingle`: positive when the sum explains the mixture better than any single component.
    Gain: float
}

/// Delta Activations' additivity test for an adapter trained on a mixture of tasks: cos(Δ_mix, Δ_1 + … + Δ_k) against
/// cos(Δ_mix, Δ_i) for each component, and the gain of the sum over the best single component. Needs at least one
/// component, every vector of the mixture's length.
let additivity (mixture: float32[]) (components: float32[][]) : Additivity =
    if components.Length = 0 then
        invalidArg (nameof components) "additivity: a mixture needs at least one component"

    for c in components do
        if c.Length <> mixture.Length then
            invalidArg
                (nameof components)
                $"additivity: a component of length {c.Length} for a mixture of length {mixture.Length}"

    let sum =
        Array.init mixture.Length (fun k -> components |> Array.sumBy (fun c -> float c[k]) |> float32)

    let withSum = Metrics.cosine mixture sum
    let singles = components |> Array.map (Metrics.cosine mixture)
    let best = Array.max singles

    {
        WithSum = withSum
        WithComponents = singles
        BestSingle = best
        Gain = withSum - best
    }
