using Microsoft.ML.Cora.IO;
using System.Text;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Cora.Llm;

/// <summary>SentencePiece <c>.model</c> through Microsoft.ML.Tokenizers.</summary>
internal sealed class SentencePieceTextTokenizer : ITextTokenizer
{
    private readonly Microsoft.ML.Tokenizers.LlamaTokenizer _tok;
    public string Source { get; }
    public int BosId => _tok.BeginningOfSentenceId;
    public int EosId => _tok.EndOfSentenceId;

    public SentencePieceTextTokenizer(string path)
    {
        Source = path;
        Microsoft.ML.Cora.IO.FileChecks.RequireRegularFile(path, "Tokenizer");
        try
        {
            using var s = File.OpenRead(path);
            _tok = Microsoft.ML.Tokenizers.LlamaTokenizer.Create(s, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not FileNotFoundException)
        {
            throw new InvalidDataException($"{path}: not a readable SentencePiece model ({e.Message}).", e);
        }
    }

    public IReadOnlyList<int> Encode(string text, bool addBos) => _tok.EncodeToIds(text, addBos, false);
    public string Decode(IEnumerable<int> ids) => _tok.Decode(ids);
}
