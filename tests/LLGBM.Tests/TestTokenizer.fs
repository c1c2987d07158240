/// A tiny character-level tokenizer for the micro models (vocabulary 64): one id per character of a fixed alphabet,
/// the end-of-text token last.
module LLGBM.Tests.TestTokenizer

open System.Collections.Generic
open LLGBM.Text

/// The characters of ids 0 … 62: space, newline, digits, lower case, A–J, K, L and punctuation.
let alphabet = " \n0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL.,:;?!-+=#$()"

/// The end-of-text id, just after the alphabet.
let endOfText = 63

let endOfTextText = "<|endoftext|>"

/// One id per character; the end-of-text token written in the text is recognised; other characters are an error.
type CharTokenizer() =
    interface ITokenizer with
        member _.Encode(text: string) : IReadOnlyList<int> =
            let ids = ResizeArray()
            let mutable i = 0

            while i < text.Length do
                if System.String.CompareOrdinal(text, i, endOfTextText, 0, endOfTextText.Length) = 0 then
                    ids.Add endOfText
                    i <- i + endOfTextText.Length
                else
                    match alphabet.IndexOf text[i] with
                    | -1 -> failwithf "CharTokenizer: %A is not in the alphabet" text[i]
                    | id -> ids.Add id

                    i <- i + 1

            ids :> _

        member _.Decode(ids: IEnumerable<int>) =
            ids
            |> Seq.map (fun id ->
                if id = endOfText then
                    endOfTextText
                else
                    string alphabet[id])
            |> String.concat ""

        member _.VocabSize = 64

        member _.SpecialTokens =
            dict [ endOfTextText, endOfText ] |> Dictionary :> IReadOnlyDictionary<string, int>

        member _.EndOfTextId = endOfText

let tokenizer = CharTokenizer() :> ITokenizer

/// The id of one character.
let id (c: char) = alphabet.IndexOf c
