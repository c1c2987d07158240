/// The first principal components of a set of vectors, for two-dimensional pictures of a pool's embeddings (the
/// delta PCA figure of `llgbm eval deltas`): the rows are centred and decomposed by a thin SVD, X − x̄ = U S Vᵀ; the
/// coordinates of row i on component c are U[i, c] · S[c], and component c explains S[c]² / Σ S² of the variance.
/// Each component's sign is fixed so that its largest loading (by magnitude) is positive.
module LLGBM.Algebra.PrincipalComponents

open TorchSharp

/// Rows projected on their leading principal components.
type Projection = {
    /// Row i's coordinates on the components (each row has `Explained.Length` of them).
    Coordinates: float[][]
    /// The share of the total variance each component explains, in order.
    Explained: float[]
}

/// The projection of `rows` (n vectors of one length) on their first `count` principal components (fewer when the
/// rows span fewer dimensions: at most min(n, d)). Computed in float64.
let project (count: int) (rows: float32[][]) : Projection =
    if rows.Length = 0 then
        invalidArg (nameof rows) "no rows to project"

    let d = rows[0].Length

    if rows |> Array.exists (fun r -> r.Length <> d) then
        invalidArg (nameof rows) $"rows of different lengths (the first has {d})"

    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope()
    let n = rows.Length
    let values: float[] = Array.concat rows |> Array.map float
    let x = torch.tensor(values).reshape(int64 n, int64 d)
    let centred = x - x.mean ([| 0L |], keepdim = true)
    let struct (u, s, vh) = torch.linalg.svd (centred, fullMatrices = false)
    let k = min (int64 count) s.shape[0]
    let leading = vh.narrow (0L, 0L, k)

    let signs =
        leading.gather(1L, leading.abs().argmax(1L, keepdim = true)).sign().squeeze(1L)

    let coordinates = u.narrow (1L, 0L, k) * s.narrow (0L, 0L, k) * signs
    let variance = s.square ()
    let total = variance.sum ()

    let explained =
        if total.item<float>() > 0.0 then
            (variance.narrow (0L, 0L, k) / total).data<float>().ToArray()
        else
            Array.zeroCreate (int k)

    let flat = coordinates.data<float>().ToArray()

    {
        Coordinates = Array.init n (fun i -> Array.sub flat (i * int k) (int k))
        Explained = explained
    }
