/// Encoders shared by the conditioning tests: one MiniLM for the whole run, a counting fake, and plain-array maths.
module LLGBM.Tests.TestEncoders

open System.Collections.Generic
open TorchSharp
open LLGBM.Conditioning

/// The pretrained encoder, loaded once (ONNX Runtime sessions are safe to share between threads).
let miniLm = lazy (new MiniLmEncoder())

/// The rows of a [K, D] tensor as float arrays.
let rows (t: torch.Tensor) : float32[][] =
    use cpu = t.cpu().contiguous()
    let d = int cpu.shape[1]
    let values = cpu.data<float32>().ToArray()
    Array.init (int cpu.shape[0]) (fun r -> Array.sub values (r * d) d)

/// The dot product of two vectors, in float64.
let dot (a: float32[]) (b: float32[]) =
    Array.fold2 (fun acc (x: float32) (y: float32) -> acc + float x * float y) 0.0 a b

/// The L2 norm of a vector, in float64.
let norm (a: float32[]) = sqrt (dot a a)

/// The cosine similarity of two vectors, in float64.
let cosine (a: float32[]) (b: float32[]) = dot a b / (norm a * norm b)

/// Encodes texts and returns the rows.
let encodeRows (encoder: ISentenceEncoder) (texts: string list) =
    use t = encoder.Encode(ResizeArray texts)
    rows t

/// A fake encoder of width `dim` whose encoding of a text is a fixed function of its characters (value d: the sum over
/// characters c at position i of code(c) · (i + 1) · (d + 1), times `scale`), recording every batch it is asked for.
type CountingEncoder(identity: string, dim: int, ?scale: float32) =
    let scale = defaultArg scale 1.0f
    let calls = List<string list>()

    /// The value the fake gives a text.
    static member Vector(text: string, dim: int, scale: float32) =
        Array.init dim (fun d ->
            let mutable s = 0.0f

            for i in 0 .. text.Length - 1 do
                s <- s + float32 (int text[i]) * float32 (i + 1) * float32 (d + 1)

            s * scale / 1000.0f)

    /// Every batch encoded so far, in order.
    member _.Calls = List.ofSeq calls

    /// Every text encoded so far, in order.
    member _.Encoded = calls |> Seq.concat |> List.ofSeq

    interface ISentenceEncoder with
        member _.Name = "counting"
        member _.Dimension = dim
        member _.Identity = identity

        member _.Encode(texts: IReadOnlyList<string>) =
            calls.Add(List.ofSeq texts)

            let values =
                texts
                |> Seq.collect (fun t -> CountingEncoder.Vector(t, dim, scale))
                |> Array.ofSeq

            torch.tensor(values).reshape([| int64 texts.Count; int64 dim |])

        member _.Dispose() = ()
