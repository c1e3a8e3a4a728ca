using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Data;

namespace Cora.Cli;

/// <summary>
/// A small, self-generated stand-in for the shared data and model, for fresh machines without them:
/// synthetic interactions from latent user/item factors, and a randomly initialised LLaMA with a character-level
/// llama2.c-format tokenizer, written as a Hugging Face folder. It proves the pipeline runs; it says nothing about
/// model quality, and every caller must label it as synthetic.
/// </summary>
/// <remarks>
/// The data has the real split's shape: rows grouped by user and ordered by time within a user, a time cut into train
/// (the earlier 80%) and valid, histories of liked items from 0 to dozens long (so prompts are short and long), both labels,
/// items drawn by popularity (Zipf-like) and a label that depends on user and item biases plus a rank-4 interaction, so every
/// CF model (MF, LightGCN, SASRec) has a signal to learn.
/// </remarks>
public static class SyntheticSetup
{
    public sealed record Paths(string Train, string Valid, string Items, string Llm);

    /// <param name="dir">Output folder (created).</param>
    /// <param name="users">Users; each gets <paramref name="rowsPerUser"/> interactions.</param>
    /// <param name="items">Items in the catalog.</param>
    /// <param name="rowsPerUser">Interactions per user.</param>
    /// <param name="seed">Everything is a function of the seed.</param>
    public static Paths Create(string dir, int users = 600, int items = 300, int rowsPerUser = 50, long seed = 2023)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random((int)seed);
        double Gauss() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        const int k = 4;
        var uf = Enumerable.Range(0, users + 1).Select(_ => Enumerable.Range(0, k).Select(_ => Gauss()).ToArray()).ToArray();
        var itf = Enumerable.Range(0, items + 1).Select(_ => Enumerable.Range(0, k).Select(_ => Gauss()).ToArray()).ToArray();
        var userBias = Enumerable.Range(0, users + 1).Select(_ => 0.5 * Gauss()).ToArray();
        var itemBias = Enumerable.Range(0, items + 1).Select(_ => 0.8 * Gauss()).ToArray();
        // Popularity: item i is drawn with weight 1 / (rank)^0.8 under a seeded shuffle of the ids.
        var popularity = Enumerable.Range(1, items).OrderBy(_ => rng.Next()).ToArray();
        var cumulative = new double[items];
        for (int r = 0; r < items; r++) cumulative[r] = (r == 0 ? 0 : cumulative[r - 1]) + 1.0 / Math.Pow(r + 1, 0.8);
        int DrawItem()
        {
            double x = rng.NextDouble() * cumulative[^1];
            int at = Array.BinarySearch(cumulative, x);
            return popularity[Math.Min(items - 1, at < 0 ? ~at : at)];
        }
        string[] genres = { "Comedy", "Drama", "Action", "Romance" };
        var titles = Enumerable.Range(1, items).ToDictionary(i => i, i => $"Film {i} ({genres[Array.IndexOf(itf[i], itf[i].Max())]})");
        var rows = new List<(int u, int i, bool y, long t)>();
        const long t0 = 1_000_000_000, span = 10_000_000;
        // One item in twenty is released late (only in the valid period: cold items); users start over the whole span, so the
        // last ones appear only after the cut (cold users).
        var release = Enumerable.Range(0, items + 1).Select(i => i > 0 && rng.Next(20) == 0 ? t0 + span * 9 / 10 : t0).ToArray();
        for (int u = 1; u <= users; u++)
        {
            // Each user is active over their own window, so early and late rows both have short and long histories.
            long start = t0 + (long)(span * 0.9 * rng.NextDouble()), length = span / 8 + (long)(span / 3 * rng.NextDouble());
            var seen = new HashSet<int>();
            for (int n = 0, tries = 0; n < rowsPerUser && tries < 100 * rowsPerUser; tries++)
            {
                long t = start + (long)(length * rng.NextDouble());
                int i = DrawItem();
                if (release[i] > t || !seen.Add(i)) continue;
                double s = uf[u].Zip(itf[i], (a, b) => a * b).Sum() + userBias[u] + itemBias[i] + 0.5 * Gauss();
                rows.Add((u, i, s > 0, t));
                n++;
            }
        }
        long cutTime = rows.Select(r => r.t).OrderBy(t => t).ElementAt((int)(rows.Count * 0.8));
        var trainPart = rows.Where(r => r.t < cutTime).ToList();
        var trainUsers = trainPart.Select(r => r.u).ToHashSet();
        var trainItems = trainPart.Select(r => r.i).ToHashSet();
        var train = new List<Interaction>();
        var valid = new List<Interaction>();
        foreach (var user in rows.GroupBy(r => r.u).OrderBy(g => g.Key))
        {
            var history = new List<int>();
            foreach (var r in user.OrderBy(r => r.t))
            {
                var row = new Interaction(r.u, r.i, r.y, r.t, trainUsers.Contains(r.u) && trainItems.Contains(r.i), history.ToArray());
                (r.t < cutTime ? train : valid).Add(row);
                if (r.y) history.Add(r.i);
            }
        }
        var paths = new Paths(Path.Combine(dir, "train.tsv"), Path.Combine(dir, "valid.tsv"), Path.Combine(dir, "items.tsv"), Path.Combine(dir, "random-llama"));
        InteractionTsv.Write(paths.Train, train);
        InteractionTsv.Write(paths.Valid, valid);
        new ItemCatalog(titles).Write(paths.Items);

        // Character-level llama2.c tokenizer: <unk>, <s>, </s>, 256 byte tokens, then printable ASCII.
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        pieces.AddRange(Enumerable.Range(32, 95).Select(c => ((char)c).ToString()));
        Directory.CreateDirectory(paths.Llm);
        Llama2cTokenizer.Write(Path.Combine(paths.Llm, "tokenizer.bin"), pieces, pieces.Select(_ => 0f).ToList());
        var config = new LlamaConfig
        {
            HiddenSize = 64, IntermediateSize = 172, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
            VocabSize = pieces.Count, MaxPositionEmbeddings = 1024, RmsNormEps = 1e-5, TieWordEmbeddings = true,
        }.Validate("synthetic");
        using var model = LlamaForCausalLM.CreateRandom(config, seed);
        CheckpointLoader.SaveHuggingFace(model, paths.Llm);
        return paths;
    }
}
