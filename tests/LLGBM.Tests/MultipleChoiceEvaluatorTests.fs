module LLGBM.Tests.MultipleChoiceEvaluatorTests

open Expecto
open LLGBM.Tasks
open LLGBM.Evaluation
open LLGBM.Tests.TestModels
open LLGBM.Tests.EvaluationFixtures

let private tok = TestTokenizer.tokenizer
let private eot = TestTokenizer.endOfText

/// Prompts and choices of unequal lengths (one prompt empty: it is read as the end-of-text token).
let private questions = [
    "12+30=", [ "42"; "41"; "4" ]
    "what is b?", [ "yes"; "no" ]
    "", [ "a"; "bb"; "ccc"; "d" ]
    "IJ:", [ "A"; "B" ]
    "x y", [ "x"; "y z"; "(" ]
]

let private letter i = string (char (int 'A' + i))

/// The naive scores of one question: the log-likelihood of " " + choice after the prompt text's ids.
let private naiveScores model (spec: TaskSpec) (format: PromptFormat) (prompt, choices: string list) =
    let text = format.Prompt(spec, answered prompt "")
    let context = if text = "" then [ eot ] else List.ofSeq (tok.Encode text)

    choices
    |> List.map (fun c -> naiveLogLikelihood model context (tok.Encode(PromptFormat.Continuation c)))

let private argmax (scores: float list) =
    scores |> List.indexed |> List.maxBy snd |> fst

let private close = { absolute = 1e-4; relative = 1e-5 }

let private evaluate model data options =
    MultipleChoiceEvaluator.Evaluate(evaluated model, tok, data, options)

[<Tests>]
let tests =
    testList "MultipleChoiceEvaluator" [
        test "Evaluate: choice scores are the naive log-likelihoods, the pick their argmax, accuracy against the answer" {
            use model = micro 61L

            for format in [ PromptFormat.Bare; PromptFormat.WithInstruction ] do
                let spec = (task "t" TaskKind.MultipleChoice AnswerExtraction.FirstLine []).Spec
                let naive = questions |> List.map (naiveScores model spec format)
                // even examples name the naive pick as the answer, odd ones another choice
                let answers =
                    naive
                    |> List.mapi (fun i s -> if i % 2 = 0 then argmax s else (argmax s + 1) % s.Length)

                let data =
                    List.map2 (fun (p, cs) a -> choice p cs (letter a)) questions answers
                    |> task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine

                let result =
                    evaluate model data (EvaluationOptions(Format = format, BatchSize = 3, KeepPredictions = true))

                for (i, p) in Seq.indexed result.Predictions do
                    List.iteri2
                        (fun c a e -> Expect.floatClose close a e $"example {i}, choice {c}")
                        (List.ofSeq p.ChoiceScores)
                        naive[i]

                    Expect.equal p.Prediction (letter (argmax naive[i])) $"pick of example {i}"
                    Expect.equal p.Reference (letter answers[i]) $"reference of example {i}"

                Expect.equal result.Correct 3 "examples 0, 2 and 4"
                Expect.equal result.N 5 "n"
                Expect.floatClose Accuracy.veryHigh result.Accuracy 0.6 "accuracy"
                Expect.equal result.Metric "choice_accuracy" "metric"
        }

        test "Evaluate: normalising by token count changes the pick in a constructed case" {
            use model = micro 62L
            let spec = (task "t" TaskKind.MultipleChoice AnswerExtraction.FirstLine []).Spec
            let symbols = TestTokenizer.alphabet.Substring 2 // no space, no newline
            let space = TestTokenizer.id ' '

            // log p(token | ids) for every token, from one unpadded forward pass
            let nextLogProbs (ids: int list) =
                use _ = TorchSharp.torch.no_grad ()
                let input = longs [ 1L; int64 ids.Length ] [ for t in ids -> int64 t ]
                use output = model.Forward(input, LLGBM.Model.ForwardOptions())
                output.Logits[0, -1].to_type(TorchSharp.torch.float64).log_softmax(-1).data<float>().ToArray()

            // a long choice with a high likelihood per token: the most likely symbols after the prompt and a space
            let greedyChoice context n =
                let rec extend (acc: char list) =
                    if acc.Length = n then
                        System.String(Array.ofList acc)
                    else
                        let logProbs =
                            nextLogProbs (context @ [ space ] @ [ for c in acc -> TestTokenizer.id c ])

                        extend (acc @ [ symbols |> Seq.maxBy (fun c -> logProbs[TestTokenizer.id c]) ])

                extend []

            // a short choice (one symbol, 2 tokens with the space) that wins on the sum but loses per token
            let constructed =
                seq {
                    for prompt in [ "q?"; "12+3="; "say"; "IJ:" ] do
                        let context = List.ofSeq (tok.Encode prompt)
                        let afterPrompt = nextLogProbs context
                        let afterSpace = nextLogProbs (context @ [ space ])

                        for n in 2..6 do
                            let long = greedyChoice context n
                            let sLong = naiveLogLikelihood model context (tok.Encode(" " + long))

                            for s in symbols do
                                let sShort = afterPrompt[space] + afterSpace[TestTokenizer.id s]

                                if sShort > sLong && sShort / 2.0 < sLong / float (n + 1) then
                                    yield prompt, string s, long
                }
                |> Seq.tryHead

            let (prompt, short, long) =
                Expect.wantSome constructed "a short choice ahead on the sum and behind per token exists"

            let data =
                task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine [ choice prompt [ short; long ] "B" ]

            let pick normalization =
                let r =
                    evaluate model data (EvaluationOptions(Normalization = normalization, KeepPredictions = true))

                r.Predictions[0].Prediction, r.Accuracy

            Expect.equal (pick LengthNormalization.None) ("A", 0.0) $"summed: %A{short} over %A{long}"
            Expect.equal (pick LengthNormalization.Tokens) ("B", 1.0) $"per token: %A{long} over %A{short}"
        }

        test "Evaluate: normalised scores are the naive log-likelihoods divided by tokens, characters or bytes" {
            use model = micro 63L
            let spec = (task "t" TaskKind.MultipleChoice AnswerExtraction.FirstLine []).Spec
            let (prompt, choices) = questions[0]
            let naive = naiveScores model spec PromptFormat.Bare (prompt, choices)

            let data =
                task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine [ choice prompt choices "A" ]

            for normalization in
                [
                    LengthNormalization.Tokens
                    LengthNormalization.Characters
                    LengthNormalization.Bytes
                ] do
                let scores =
                    (evaluate model data (EvaluationOptions(Normalization = normalization, KeepPredictions = true)))
                        .Predictions[0].ChoiceScores

                // every symbol is one token, one character and one byte; " 42" has length 3
                List.iteri2
                    (fun c a e ->
                        Expect.floatClose close a (e / float (choices[c].Length + 1)) $"{normalization}, choice {c}")
                    (List.ofSeq scores)
                    naive
        }

        test "Length: tokens, UTF-16 characters or UTF-8 bytes of the continuation, 1 without normalisation" {
            let length n =
                MultipleChoiceEvaluator.Length(n, 2, " é")

            Expect.equal (length LengthNormalization.None) 1.0 "none"
            Expect.equal (length LengthNormalization.Tokens) 2.0 "tokens as given"
            Expect.equal (length LengthNormalization.Characters) 2.0 "space and é"
            Expect.equal (length LengthNormalization.Bytes) 3.0 "é is two bytes"
        }

        test "Evaluate: the padding side and batch size change neither scores nor picks" {
            use model = micro 64L

            let data =
                questions
                |> List.map (fun (p, cs) -> choice p cs "A")
                |> task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine

            let run padding batchSize =
                evaluate
                    model
                    data
                    (EvaluationOptions(Padding = padding, BatchSize = batchSize, KeepPredictions = true))

            let reference = run PaddingSide.Right 1

            for (padding, batchSize) in [ PaddingSide.Left, 1; PaddingSide.Left, 4; PaddingSide.Right, 16 ] do
                let other = run padding batchSize

                for (a, b) in Seq.zip reference.Predictions other.Predictions do
                    Expect.equal b.Prediction a.Prediction $"pick of example {a.Index}"

                    Seq.iter2
                        (fun x y -> Expect.floatClose { absolute = 1e-5; relative = 1e-6 } y x $"example {a.Index}")
                        a.ChoiceScores
                        b.ChoiceScores
        }

        test "Evaluate: progress counts examples with every choice scored and ends at the total" {
            use model = micro 65L

            let data =
                questions
                |> List.map (fun (p, cs) -> choice p cs "A")
                |> task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine

            let reports = ResizeArray()

            evaluate model data (EvaluationOptions(BatchSize = 5, Progress = fun d t -> reports.Add((d, t))))
            |> ignore

            let dones = [ for (d, _) in reports -> d ]
            Expect.equal (List.sort dones) dones "never decreasing"
            Expect.equal (List.last dones) 5 "ends at every example"
            Expect.isTrue (reports |> Seq.forall (fun (_, t) -> t = 5)) "total"
            // 14 sequences in batches of 5: three reports
            Expect.equal reports.Count 3 "one report per batch"
        }

        test "Evaluate: an example without choices, an answer outside them, or a generation task is a clear error" {
            use model = micro 66L

            let fails examples =
                errorMessage<LLGBM.LlgbmException>(fun () ->
                    evaluate model (task "mc" TaskKind.MultipleChoice AnswerExtraction.FirstLine examples) null
                    |> ignore)

            Expect.stringContains (fails [ choice "q" [ "a" ] "A"; answered "q" "A" ]) "example 1" "no choices"
            Expect.stringContains (fails [ choice "q" [ "a"; "b" ] "C" ]) "\"C\"" "answer outside the choices"

            Expect.throwsT<LLGBM.LlgbmException>
                (fun () ->
                    evaluate model (task "g" TaskKind.Generation AnswerExtraction.FirstLine [ answered "q" "a" ]) null
                    |> ignore)
                "kind"
        }
    ]
