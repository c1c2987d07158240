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

/// Text fragments that stress JSON escaping: quotes, backslashes, newlines, tabs, non-ASCII and astral characters,
/// markup, and inner spaces. Every fragment has a non-space character.
let private textFragments = [|
    "a"
    "Question: 2 + 2 ="
    "\"quoted\""
    "back\\slash"
    "line\nbreak"
    "tab\there"
    "Ünïcödé ß"
    "日本語"
    "emoji 😀"
    "</script> & <b>"
    "  padded  "
    "{\"json\": [1]}"
|]

/// A task text: 1..3 fragments of `textFragments` joined by spaces (never empty or blank).
let taskText: Gen<string> =
    gen {
        let! count = Gen.choose (1, 3)
        let! parts = Gen.elements textFragments |> Gen.arrayOfLength count
        return System.String.Join(" ", parts)
    }

/// A valid example of a task of kind `kind`: a multiple-choice one has 2..5 choices and the letter of one of them.
let taskExample (kind: LLGBM.Tasks.TaskKind) : Gen<LLGBM.Tasks.TaskExample> =
    gen {
        let! prompt = taskText

        match kind with
        | LLGBM.Tasks.TaskKind.MultipleChoice ->
            let! count = Gen.choose (2, 5)
            let! choices = taskText |> Gen.arrayOfLength count
            let! right = Gen.choose (0, count - 1)

            return LLGBM.Tasks.TaskExample(Prompt = prompt, Answer = string (char (int 'A' + right)), Choices = choices)
        | _ ->
            let! answer = taskText
            return LLGBM.Tasks.TaskExample(Prompt = prompt, Answer = answer)
    }

/// A valid task: either kind, any extraction, optional instruction and description, 0..2 components (task names), 0..6 training
/// and 0..4 test examples.
let taskData: Gen<LLGBM.Tasks.TaskData> =
    gen {
        let! kind =
            Gen.elements [ LLGBM.Tasks.TaskKind.Generation; LLGBM.Tasks.TaskKind.MultipleChoice ]

        let! extraction =
            Gen.elements (System.Enum.GetValues<LLGBM.Tasks.AnswerExtraction>())

        let names = [ "arith-add-3"; "arc-easy"; "task with spaces"; "tâche" ]
        let! name = Gen.elements names
        let! domain = taskText
        let! instruction = Gen.optionOf taskText
        let! description = Gen.optionOf taskText
        let! componentCount = Gen.choose (0, 2)
        // Components are task names, which name directories.
        let! components = Gen.elements names |> Gen.arrayOfLength componentCount
        let! trainCount = Gen.choose (0, 6)
        let! train = taskExample kind |> Gen.arrayOfLength trainCount
        let! testCount = Gen.choose (0, 4)
        let! test = taskExample kind |> Gen.arrayOfLength testCount

        let spec =
            LLGBM.Tasks.TaskSpec(
                Name = name,
                Domain = domain,
                Kind = kind,
                Extraction = extraction,
                Instruction = Option.toObj instruction,
                Description = Option.toObj description,
                Components = components
            )

        return LLGBM.Tasks.TaskData(spec, train, test)
    }

/// A generation task named "gen" whose training split has `count` examples with prompts "p0", "p1", … and answers
/// "a0", "a1", … (so an example's index can be read off its prompt).
let numberedTask (count: int) =
    let spec =
        LLGBM.Tasks.TaskSpec(Name = "gen", Domain = "test", Kind = LLGBM.Tasks.TaskKind.Generation)

    let train = [|
        for i in 0 .. count - 1 -> LLGBM.Tasks.TaskExample(Prompt = $"p{i}", Answer = $"a{i}")
    |]

    LLGBM.Tasks.TaskData(spec, train, [||])

/// (training-set size n, batch size k, seed) with 1 <= k <= n <= 40 and any 64-bit seed.
let batchCase: Gen<int * int * int64> =
    gen {
        let! n = Gen.choose (1, 40)
        let! k = Gen.choose (1, n)
        let! seed = ArbMap.defaults |> ArbMap.generate<int64>
        return n, k, seed
    }

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

/// A batch of vector pairs for the delta losses: N in 1..4 rows of D in 1..8 values each (see `vector`), every
/// vector non-zero (so that normalising it is well defined), as row-major arrays with (N, D).
type VectorPairs = {
    Rows: int
    Dim: int
    Predicted: float[]
    Target: float[]
}

/// `VectorPairs` with a positive scale factor in [1/16, 8] (a multiple of 1/16, exact in float32).
let vectorPairs: Gen<VectorPairs * float> =
    let nonZero (dim: int) =
        vector dim |> Gen.where (Array.exists (fun x -> x <> 0.0))

    gen {
        let! rows = Gen.choose (1, 4)
        let! dim = smallDim
        let! predicted = nonZero dim |> Gen.arrayOfLength rows |> Gen.map Array.concat
        let! target = nonZero dim |> Gen.arrayOfLength rows |> Gen.map Array.concat
        let! scale = Gen.choose (1, 128) |> Gen.map (fun i -> float i / 16.0)

        return
            {
                Rows = rows
                Dim = dim
                Predicted = predicted
                Target = target
            },
            scale
    }

/// A LoRA tokenisation case: a Qwen2 architecture with small random widths (hidden 1..40, intermediate 1..40, head
/// width 2..16 over 1..4 query heads), so that module widths are often not multiples of the chunk width; 1..2 layers;
/// a non-empty random subset of the seven linear modules, each with its own rank 1..16; a chunk width 1..20; 1..3
/// adapters for the batched checks; whether B is zero (a freshly initialised adapter, every Bᵀ chunk constant); and a
/// seed for the factor values.
type LoraTokenCase = {
    Hidden: int
    Intermediate: int
    KvHeads: int
    Group: int
    HeadDim: int
    Layers: int
    Ranks: (string * int) list
    ChunkWidth: int
    Count: int
    ZeroB: bool
    Seed: int64
}

/// `LoraTokenCase`s.
let loraTokenCase: Gen<LoraTokenCase> =
    let modules = [ "q_proj"; "k_proj"; "v_proj"; "o_proj"; "gate_proj"; "up_proj"; "down_proj" ]

    gen {
        let! hidden = Gen.choose (1, 40)
        let! intermediate = Gen.choose (1, 40)
        let! kvHeads = Gen.choose (1, 2)
        let! group = Gen.choose (1, 2)
        let! headDim = evenHeadDim
        let! layers = Gen.choose (1, 2)

        let! picked =
            Gen.elements [ true; false ]
            |> Gen.listOfLength modules.Length
            |> Gen.where (List.contains true)

        let targets = List.zip modules picked |> List.filter snd |> List.map fst
        let! ranks = Gen.choose (1, 16) |> Gen.listOfLength targets.Length
        let! width = Gen.choose (1, 20)
        let! count = Gen.choose (1, 3)
        let! zeroB = Gen.frequency [ 1, Gen.constant true; 4, Gen.constant false ]
        let! seed = Gen.choose (0, 1_000_000) |> Gen.map int64

        return {
            Hidden = hidden
            Intermediate = intermediate
            KvHeads = kvHeads
            Group = group
            HeadDim = headDim
            Layers = layers
            Ranks = List.zip targets ranks
            ChunkWidth = width
            Count = count
            ZeroB = zeroB
            Seed = seed
        }
    }

/// A float32 vector of `length` values in [-2, 2] on a grid of 1/256 (see `vector`).
let vector32 (length: int) : Gen<float32[]> =
    vector length |> Gen.map (Array.map float32)

/// A float32 vector of `length` non-zero values in [-2, 2] on a grid of 1/256.
let nonZeroVector32 (length: int) : Gen<float32[]> =
    Gen.oneof [ Gen.choose (-512, -1); Gen.choose (1, 512) ]
    |> Gen.map (fun i -> float32 i / 256.0f)
    |> Gen.arrayOfLength length

/// A float32 vector of `length` entries with distinct non-zero magnitudes (a shuffle of 1/8, 2/8, …, length/8 with
/// random signs), so that its top entries by magnitude are unambiguous.
let distinctMagnitudes (length: int) : Gen<float32[]> =
    gen {
        let! order = Gen.shuffle [| 1..length |]
        let! signs = Gen.elements [ -1.0f; 1.0f ] |> Gen.arrayOfLength length
        return Array.map2 (fun (m: int) s -> s * float32 m / 8.0f) order signs
    }

/// T in 1..4 task vectors of one length n in 1..12, as float32 arrays (values of `vector32`).
let taskVectorArrays: Gen<float32[][]> =
    gen {
        let! n = Gen.choose (1, 12)
        let! t = Gen.choose (1, 4)
        return! vector32 n |> Gen.arrayOfLength t
    }

/// A TIES density on a grid of 1/20 in [0, 1].
let density: Gen<float> = Gen.choose (0, 20) |> Gen.map (fun i -> float i / 20.0)

/// T in 1..4 non-zero vectors of length n in 1..10 that agree in sign at every coordinate (a common sign pattern,
/// magnitudes in (0, 2]).
let agreeingVectors: Gen<float32[][]> =
    gen {
        let! n = Gen.choose (1, 10)
        let! t = Gen.choose (1, 4)
        let! signs = Gen.elements [ -1.0f; 1.0f ] |> Gen.arrayOfLength n

        let! magnitudes =
            Gen.choose (1, 512)
            |> Gen.map (fun i -> float32 i / 256.0f)
            |> Gen.arrayOfLength n
            |> Gen.arrayOfLength t

        return magnitudes |> Array.map (Array.map2 (*) signs)
    }

/// True when no two of the vectors are parallel (|cos| below 1 − 1e-6) and none is zero.
let private pairwiseDistinctDirections (vectors: float32[][]) =
    let cosine (a: float32[]) (b: float32[]) =
        let dot =
            Array.fold2 (fun acc (x: float32) (y: float32) -> acc + float x * float y) 0.0 a b

        let norm (v: float32[]) =
            v |> Array.sumBy (fun x -> float x * float x) |> sqrt

        dot / (norm a * norm b)

    vectors |> Array.forall (Array.exists (fun x -> x <> 0.0f))
    && Seq.forall
        (fun (i, j) -> i = j || cosine vectors[i] vectors[j] < 1.0 - 1e-6)
        (Seq.allPairs [ 0 .. vectors.Length - 1 ] [ 0 .. vectors.Length - 1 ])

/// A library of 2..8 deltas of dimension 2..8 pointing in pairwise different directions, and the index of one of them.
let deltaLibrary: Gen<float32[][] * int> =
    gen {
        let! dim = Gen.choose (2, 8)
        let! count = Gen.choose (2, 8)

        let! library =
            vector32 dim |> Gen.arrayOfLength count |> Gen.where pairwiseDistinctDirections

        let! index = Gen.choose (0, count - 1)
        return library, index
    }
