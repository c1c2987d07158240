/// Explicit FsCheck generators for the property tests. Everything is kept small (dimensions up to 16, sequences up to
/// 12 tokens, batches up to 4 rows) so that a property of a few dozen cases runs in well under a second.
module LLGBM.Tests.Generators

open Expecto
open FsCheck
open FsCheck.FSharp

/// A fixed-seed property configuration: the same cases on every run, `cases` of them.
let config (cases: int) = {
    FsCheckConfig.defaultConfig with
        maxTest = cases
        replay = Some(20250607UL, 0x9E3779B97F4A7C15UL, None)
}

/// A small positive dimension, 1..8.
let smallDim: Gen<int> = Gen.choose (1, 8)

/// An even head dimension, 2..16 (rotary embeddings pair the two halves of a head).
let evenHeadDim: Gen<int> = Gen.choose (1, 8) |> Gen.map (fun half -> 2 * half)

/// A vector of `length` values in [-2, 2], on a grid of 1/256 so that they are exact in float32.
let vector (length: int) : Gen<float[]> =
    Gen.choose (-512, 512)
    |> Gen.map (fun i -> float i / 256.0)
    |> Gen.arrayOfLength length

/// Positions (p, s, d) with p, s in 0..1000 and d in -min(p, s)..500, so that p + d and s + d are positions too.
let positionTriple: Gen<int * int * int> =
    gen {
        let! p = Gen.choose (0, 1000)
        let! s = Gen.choose (0, 1000)
        let! d = Gen.choose (-(min p s), 500)
        return p, s, d
    }

/// A token-id sequence of length 1..12 over a vocabulary of `vocab` ids.
let tokenSequence (vocab: int) : Gen<int[]> =
    gen {
        let! length = Gen.choose (1, 12)
        return! Gen.choose (0, vocab - 1) |> Gen.arrayOfLength length
    }

/// True when the rows do not all have the same length.
let unequal (rows: int[][]) =
    rows |> Array.map Array.length |> Array.distinct |> Array.length > 1

/// 2..4 token-id sequences (see `tokenSequence`), not all of the same length.
let unequalBatch (vocab: int) : Gen<int[][]> =
    gen {
        let! rows = Gen.choose (2, 4)
        return! tokenSequence vocab |> Gen.arrayOfLength rows
    }
    |> Gen.where unequal

/// Shorter versions of a sequence: each one with a single token removed (never below one token).
let shrinkSequence (tokens: int[]) : seq<int[]> =
    if tokens.Length <= 1 then
        Seq.empty
    else
        seq { for i in 0 .. tokens.Length - 1 -> Array.removeAt i tokens }

/// Smaller batches: one row dropped, or one row shortened, keeping at least two rows of unequal length.
let shrinkBatch (rows: int[][]) : seq<int[][]> =
    seq {
        if rows.Length > 2 then
            for i in 0 .. rows.Length - 1 -> Array.removeAt i rows

        for i in 0 .. rows.Length - 1 do
            for shorter in shrinkSequence rows[i] -> Array.updateAt i shorter rows
    }
    |> Seq.filter unequal

/// `tokenSequence` with shrinking towards shorter sequences.
let tokenSequenceArb (vocab: int) : Arbitrary<int[]> =
    Arb.fromGenShrink (tokenSequence vocab, shrinkSequence)

/// `unequalBatch` with shrinking towards fewer and shorter rows.
let unequalBatchArb (vocab: int) : Arbitrary<int[][]> =
    Arb.fromGenShrink (unequalBatch vocab, shrinkBatch)

/// One Unicode scalar value (never a surrogate), drawn from ASCII, Latin-1, the rest of the Basic Multilingual Plane
/// (CJK, combining marks, …) and the supplementary planes (emoji, math letters), so that UTF-8 lengths 1–4 all occur.
let unicodeScalar: Gen<string> =
    Gen.frequency [
        4, Gen.choose (0x00, 0x7F)
        2, Gen.choose (0x80, 0x7FF)
        2, Gen.choose (0x800, 0xD7FF)
        1, Gen.choose (0xE000, 0xFFFD)
        1, Gen.choose (0x10000, 0x10FFFF)
    ]
    |> Gen.map System.Char.ConvertFromUtf32

/// A text of 0..24 pieces, each a Unicode scalar or (now and then) one of `specials` written out.
let unicodeTextWith (specials: string list) : Gen<string> =
    let piece =
        if List.isEmpty specials then
            unicodeScalar
        else
            Gen.frequency [ 9, unicodeScalar; 1, Gen.elements specials ]

    gen {
        let! length = Gen.choose (0, 24)
        let! pieces = Gen.arrayOfLength length piece
        return System.String.Concat pieces
    }

/// Shorter texts: one character (UTF-16 code unit pair kept whole) removed.
let shrinkText (text: string) : seq<string> =
    let scalars = System.Globalization.StringInfo.GetTextElementEnumerator text

    let elements = [|
        while scalars.MoveNext() do
            yield scalars.GetTextElement()
    |]

    seq { for i in 0 .. elements.Length - 1 -> System.String.Concat(Array.removeAt i elements) }

/// `unicodeTextWith` with shrinking towards shorter texts.
let unicodeTextArb (specials: string list) : Arbitrary<string> =
    Arb.fromGenShrink (unicodeTextWith specials, shrinkText)
