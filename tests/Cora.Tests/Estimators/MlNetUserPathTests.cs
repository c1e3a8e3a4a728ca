using Microsoft.ML;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Training;
using Microsoft.ML.Data;

namespace Cora.Tests;

/// <summary>The ML.NET user's path, written as a user would: public API only, on the synthetic fixture (runs on any clone).</summary>
[TestClass]
public class MlNetUserPathTests
{
    private static Dictionary<int, string> Titles => Synthetic.Items.Titles.ToDictionary(kv => kv.Key, kv => kv.Value);

    private static CoraTrainer.Options Small(CoraMethod method = CoraMethod.Cora)
    {
        var o = new CoraTrainer.Options
        {
            LlmPath = Synthetic.LlmPath, ItemTitles = Titles,
            MatrixFactorization = new MatrixFactorizationOptions { EmbeddingDim = 8, MaxEpochs = 3 },
            Model = new CoraModelOptions { QueryGenerator = new QueryGeneratorOptions { NumLayers = 1, Hidden = 32, Heads = 4, FeedForward = 64 } },
        };
        o.Method = method; o.MaxSteps = 3; o.ValidateEvery = 1000; o.ScoringBatchSize = 8;
        return o;
    }

    private static readonly Lazy<(MLContext ml, CoraTransformer model)> Trained = new(() =>
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Recommendation().Trainers.Cora(Small()).Fit(ml.Data.LoadFromEnumerable(CoraInput.From(Synthetic.Train.Take(600))));
        return (ml, model);
    });

    public sealed class KeyedRow { public uint UserId { get; set; } [KeyType(1000)] public uint ItemId { get; set; } public bool Label { get; set; } [VectorType] public int[] History { get; set; } = Array.Empty<int>(); }

    private sealed class NoHistoryRow
    {
        public int UserId { get; set; }
        public int ItemId { get; set; }
        public bool Label { get; set; }
    }

    [TestMethod]
    public void WithoutAHistoryColumnRowsHaveNoHistoryAndAMisnamedOneIsAnError()
    {
        var ml = new MLContext(1);
        NoHistoryRow Row(Interaction r) => new() { UserId = r.UserId, ItemId = r.ItemId, Label = r.Label };
        var rows = Synthetic.Train.Where(r => Synthetic.Items.Contains(r.ItemId)).Take(300).Select(Row).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var o = Small();
        o.ValidationData = ml.Data.LoadFromEnumerable(Synthetic.Valid.Where(r => Synthetic.Items.Contains(r.ItemId)).Take(120).Select(Row).ToList());
        using var model = ml.Recommendation().Trainers.Cora(o).Fit(data);
        var scored = model.Transform(data).GetColumn<float>("Score").Take(16).ToArray();
        var direct = model.Model.Score(rows.Take(16).Select(r => new Interaction(r.UserId, r.ItemId, false, 0, true, Array.Empty<int>())).ToList());
        for (int i = 0; i < scored.Length; i++) Assert.AreEqual(direct[i], scored[i], 1e-5 * Math.Max(1, Math.Abs(direct[i])), "no history column = no history in the prompt");
        var engine = ml.Model.CreatePredictionEngine<NoHistoryRow, CoraPrediction>(model);
        Assert.AreEqual(direct[0], engine.Predict(rows[0]).Score, 1e-5 * Math.Max(1, Math.Abs(direct[0])));
        // A history column the user names must be there: a typo is an error, not an empty history.
        var named = Small();
        named.HistoryColumnName = "Hist";
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Recommendation().Trainers.Cora(named).Fit(data));
        StringAssert.Contains(e.Message, "the History column 'Hist' is missing");
    }

    [TestMethod]
    public void KeyTypedIdsMeanTheOriginalItems()
    {
        var (ml, model) = Trained.Value;
        // Rows whose first item has a large id: after MapValueToKey it becomes key 1, whose *index* would name item 1.
        var rows = Synthetic.Valid.Take(30).OrderByDescending(r => r.ItemId).ToList();
        Assert.AreNotEqual(1, rows[0].ItemId);
        var raw = ml.Data.LoadFromEnumerable(CoraInput.From(rows));
        var keyed = ml.Transforms.Conversion.MapValueToKey("ItemId").Append(ml.Transforms.Conversion.MapValueToKey("UserId")).Fit(raw).Transform(raw);
        Assert.IsInstanceOfType<KeyDataViewType>(keyed.Schema["ItemId"].Type);
        CollectionAssert.AreEqual(model.Transform(raw).GetColumn<float>("Score").ToArray(), model.Transform(keyed).GetColumn<float>("Score").ToArray(),
            "a key-typed item id is read back to the original id (its title), not used as an id itself");

        // Fitting on keyed columns trains the same model as raw ids (same seeds).
        var trainRaw = ml.Data.LoadFromEnumerable(CoraInput.From(Synthetic.Train.Take(300)));
        var keyMap = ml.Transforms.Conversion.MapValueToKey("ItemId").Fit(trainRaw);
        var a = new MLContext(seed: 3).Recommendation().Trainers.Cora(Small()).Fit(trainRaw);
        var b = new MLContext(seed: 3).Recommendation().Trainers.Cora(Small()).Fit(keyMap.Transform(trainRaw));
        CollectionAssert.AreEqual(a.Transform(raw).GetColumn<float>("Score").ToArray(), b.Transform(raw).GetColumn<float>("Score").ToArray());

        // An item the key map never saw is key 0; the in-place map keeps the original id, hidden, and Cora scores the row
        // as it scores that raw id (an item with a title that the key map did not see).
        var seenByMap = Synthetic.Train.Take(300).Select(r => r.ItemId).ToHashSet();
        int newItem = Synthetic.Items.Titles.Keys.First(k => !seenByMap.Contains(k));
        var rawRow = new[] { new CoraInput { UserId = rows[0].UserId, ItemId = newItem } };
        var unseen = keyMap.Transform(ml.Data.LoadFromEnumerable(rawRow));
        Assert.AreEqual(0u, unseen.GetColumn<uint>("ItemId").Single(), "the key map gives the unseen item key 0");
        Assert.AreEqual(model.Transform(ml.Data.LoadFromEnumerable(rawRow)).GetColumn<float>("Score").Single(), model.Transform(unseen).GetColumn<float>("Score").Single(),
            "key 0 scored as the raw id behind it");
        // A key column made under a new name keeps no original under its name: key 0 is refused, naming the fix.
        var renamed = ml.Transforms.Conversion.MapValueToKey("ItemId", "ItemRaw").Fit(ml.Data.LoadFromEnumerable(Synthetic.Train.Take(300).Select(r => new RenamedRow { UserId = r.UserId, ItemRaw = r.ItemId })));
        var unseenRenamed = renamed.Transform(ml.Data.LoadFromEnumerable(new[] { new RenamedRow { UserId = rows[0].UserId, ItemRaw = newItem } }));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => model.Transform(unseenRenamed).GetColumn<float>("Score").ToArray());
        StringAssert.Contains(e.Message, "key map did not see");
        StringAssert.Contains(e.Message, "MapValueToKey(\"ItemId\")");
        // Keys without key values cannot be mapped back: refused, naming the column and the fix.
        var bare = ml.Data.LoadFromEnumerable(new[] { new KeyedRow { UserId = 1, ItemId = 5 } });
        var e2 = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(bare).GetColumn<float>("Score").ToArray());
        StringAssert.Contains(e2.Message, "'ItemId' holds keys without key values");
        StringAssert.Contains(e2.Message, "MapKeyToValue");
    }

    public sealed class RenamedRow { public int UserId { get; set; } public int ItemRaw { get; set; } public bool Label { get; set; } }

    /// <summary>Rows as an ML.NET user often has them: text ids, a bool label under its own name, no history.</summary>
    public sealed class NamedRow
    {
        public string Person { get; set; } = "";
        public string Movie { get; set; } = "";
        public bool Liked { get; set; }
    }

    public sealed class NamedPrediction
    {
        public float Score { get; set; }
        public float Probability { get; set; }
        public bool PredictedLabel { get; set; }
    }

    private static NamedRow Named(Interaction r) => new() { Person = "user-" + r.UserId, Movie = $"tt{r.ItemId:D5}", Liked = r.Label };

    [TestMethod]
    public void TextIdsTrainOnASplitEvaluatePredictSaveLoadAndRecommend()
    {
        var ml = new MLContext(seed: 1);
        var rows = Synthetic.Train.Where(r => Synthetic.Items.Contains(r.ItemId)).Take(600).Select(Named).ToList();
        var split = ml.Data.TrainTestSplit(ml.Data.LoadFromEnumerable(rows), testFraction: 0.25, seed: 1);
        var titles = Titles.ToDictionary(kv => $"tt{kv.Key:D5}", kv => kv.Value);
        var o = Small();
        o.ItemTitles = null;
        o.ItemTitlesByTextId = titles;
        o.UserIdColumnName = "Person"; o.ItemIdColumnName = "Movie"; o.LabelColumnName = "Liked";
        using var model = ml.Recommendation().Trainers.Cora(o).Fit(split.TrainSet);

        // The held-out rows (same users, some movies unseen in training) score and evaluate: no key-0 or unknown-id errors.
        var scored = model.Transform(split.TestSet);
        var scores = scored.GetColumn<float>("Score").ToArray();
        Assert.IsTrue(scores.Length > 100 && scores.All(float.IsFinite));
        var metrics = ml.Recommendation().Evaluate(scored, model, labelColumnName: "Liked");
        Assert.AreEqual(ml.BinaryClassification.Evaluate(scored, labelColumnName: "Liked").AreaUnderRocCurve, metrics.Overall.Auc, 1e-9);
        Assert.IsFalse(double.IsNaN(metrics.Warm.Auc), "the split's users were seen in training: warm rows exist");

        var engine = ml.Model.CreatePredictionEngine<NamedRow, NamedPrediction>(model);
        var first = split.TestSet.Preview(1).RowView[0];
        var row = new NamedRow { Person = first.Values.Single(v => v.Key == "Person").Value.ToString()!, Movie = first.Values.Single(v => v.Key == "Movie").Value.ToString()!, Liked = false };
        Assert.AreEqual(scores[0], engine.Predict(row).Score, 1e-5 * Math.Max(1, Math.Abs(scores[0])), "PredictionEngine scores a row as the batch does");

        // A person and a movie the model never saw: a cold row, scored (the movie's title comes with the catalog).
        var knownMovie = titles.Keys.First(k => !rows.Any(r => r.Movie == k));
        var cold = engine.Predict(new NamedRow { Person = "someone-new", Movie = knownMovie });
        Assert.IsTrue(float.IsFinite(cold.Score));

        // Saved and loaded: the text ids travel with the model.
        using var tmp = TestPaths.Temp();
        ml.Model.Save(model, split.TrainSet.Schema, tmp["text-ids.zip"]);
        var loaded = new MLContext().Model.LoadCora(tmp["text-ids.zip"], out _);
        CollectionAssert.AreEqual(scores, loaded.Transform(split.TestSet).GetColumn<float>("Score").ToArray());

        // Recommend by text id: results name their movies by text id, with the catalog's titles.
        string person = rows[0].Person;
        var top = CoraTransformer.Find(loaded).Recommend(person, k: 3);
        Assert.AreEqual(3, top.Count);
        foreach (var r in top)
        {
            Assert.AreEqual(person, r.UserIdText);
            Assert.IsTrue(r.ItemIdText is not null && titles.ContainsKey(r.ItemIdText), r.ItemIdText);
            Assert.AreEqual(ItemCatalog.CleanTitle(titles[r.ItemIdText!]), r.Title);
        }
        var trainPairs = split.TrainSet.GetColumn<string>("Person").Zip(split.TrainSet.GetColumn<string>("Movie")).ToHashSet();
        Assert.IsFalse(top.Any(r => trainPairs.Contains((person, r.ItemIdText!))), "movies the person was seen with in training are left out");

        // Titles keyed the wrong way are refused before training, naming the fix.
        var wrong = Small();
        wrong.UserIdColumnName = "Person"; wrong.ItemIdColumnName = "Movie"; wrong.LabelColumnName = "Liked";
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => ml.Recommendation().Trainers.Cora(wrong).Fit(split.TrainSet));
        StringAssert.Contains(e.Message, "ItemTitlesByTextId");
    }

    [TestMethod]
    public void KeyMappedTextIdsInAPipelineScoreAndEvaluateTheRowsTheKeyMapNeverSaw()
    {
        // The shape the issue names: string ids, MapValueToKey in the pipeline, TrainTestSplit; the test split holds users and
        // movies the key maps (fitted on the train split) never saw, which become key 0.
        var ml = new MLContext(seed: 1);
        var rows = Synthetic.Train.Where(r => Synthetic.Items.Contains(r.ItemId)).Take(600).Select(Named).ToList();
        var split = ml.Data.TrainTestSplit(ml.Data.LoadFromEnumerable(rows), testFraction: 0.3, seed: 1);
        // Two people the key map never sees join the test rows (both key 0).
        var testRows = ml.Data.CreateEnumerable<NamedRow>(split.TestSet, reuseRowObject: false)
            .Concat(new[] { new NamedRow { Person = "new-a", Movie = rows[0].Movie, Liked = true }, new NamedRow { Person = "new-b", Movie = rows[1].Movie, Liked = false } }).ToList();
        var test = ml.Data.LoadFromEnumerable(testRows);
        var o = Small();
        o.ItemTitles = null;
        o.ItemTitlesByTextId = Titles.ToDictionary(kv => $"tt{kv.Key:D5}", kv => kv.Value);
        o.UserIdColumnName = "Person"; o.ItemIdColumnName = "Movie"; o.LabelColumnName = "Liked";
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Person").Append(ml.Transforms.Conversion.MapValueToKey("Movie"))
            .Append(ml.Recommendation().Trainers.Cora(o));
        var model = pipeline.Fit(split.TrainSet);
        var scored = model.Transform(test);
        Assert.AreEqual(2, scored.GetColumn<uint>("Person").Count(k => k == 0) - testRows.SkipLast(2).Count(r => !split.TrainSet.GetColumn<string>("Person").Contains(r.Person)));
        var movieKeys = scored.GetColumn<uint>("Movie").ToArray();
        Assert.IsTrue(movieKeys.Count(k => k == 0) > 0, "some test movies were not in the train split");
        // Each row, key 0 or not, scores as the Cora transformer alone scores the raw text ids.
        var direct = CoraTransformer.Find(model).Transform(test).GetColumn<float>("Score").ToArray();
        CollectionAssert.AreEqual(direct, scored.GetColumn<float>("Score").ToArray());
        Assert.AreEqual(movieKeys.Length, scored.Preview(maxRows: 1000).RowView.Length);
        var auc = ml.BinaryClassification.Evaluate(scored, labelColumnName: "Liked").AreaUnderRocCurve;
        var m = ml.Recommendation().Evaluate(scored, model, labelColumnName: "Liked");
        Assert.AreEqual(auc, m.Overall.Auc, 1e-9);
        Assert.AreEqual(m.Overall.Rows, movieKeys.Length);
        Assert.AreEqual(testRows.Select(r => r.Person).Distinct().Count(), m.Overall.UsersCounted + m.Overall.UsersSkipped, "unseen users stay apart (read from the hidden originals)");
        // PredictionEngine on the whole pipeline: an unseen movie (key 0) scores as the raw id does.
        var engine = ml.Model.CreatePredictionEngine<NamedRow, NamedPrediction>(model);
        var rawEngine = ml.Model.CreatePredictionEngine<NamedRow, NamedPrediction>(CoraTransformer.Find(model));
        var trainMovies = split.TrainSet.GetColumn<string>("Movie").ToHashSet();
        var newMovie = o.ItemTitlesByTextId.Keys.First(k => !trainMovies.Contains(k));
        var request = new NamedRow { Person = rows[1].Person, Movie = newMovie };
        Assert.AreEqual(rawEngine.Predict(request).Score, engine.Predict(request).Score);
    }

    [TestMethod]
    public void ALabelHeldAsZeroOrOneFloatTrainsAsTheBooleanOne()
    {
        var ml = new MLContext(1);
        var rows = Synthetic.Train.Where(r => Synthetic.Items.Contains(r.ItemId)).Take(300).ToList();
        var asBool = ml.Data.LoadFromEnumerable(rows.Select(r => new NoHistoryRow { UserId = r.UserId, ItemId = r.ItemId, Label = r.Label }));
        var asFloat = ml.Data.LoadFromEnumerable(rows.Select(r => new FloatLabelRow { UserId = r.UserId, ItemId = r.ItemId, Label = r.Label ? 1f : 0f }));
        using var a = new MLContext(3).Recommendation().Trainers.Cora(Small()).Fit(asBool);
        using var b = new MLContext(3).Recommendation().Trainers.Cora(Small()).Fit(asFloat);
        CollectionAssert.AreEqual(a.Transform(asBool).GetColumn<float>("Score").ToArray(), b.Transform(asFloat).GetColumn<float>("Score").ToArray());
        var mA = ml.Recommendation().Evaluate(a.Transform(asBool), a);
        var mB = ml.Recommendation().Evaluate(b.Transform(asFloat), b);
        Assert.AreEqual(mA.Overall.Auc, mB.Overall.Auc);
        var bad = ml.Data.LoadFromEnumerable(rows.Take(20).Select(r => new FloatLabelRow { UserId = r.UserId, ItemId = r.ItemId, Label = 0.7f }));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => new MLContext(3).Recommendation().Trainers.Cora(Small()).Fit(bad));
        StringAssert.Contains(e.Message, "holds 0.7");
    }

    private sealed class FloatLabelRow { public int UserId { get; set; } public int ItemId { get; set; } public float Label { get; set; } }

    [TestMethod]
    public void AUserKeyTheKeyMapNeverSawIsScoredAsAColdUser()
    {
        var (ml, model) = Trained.Value;
        var trainRaw = ml.Data.LoadFromEnumerable(CoraInput.From(Synthetic.Train.Take(300)));
        var keyMap = ml.Transforms.Conversion.MapValueToKey("UserId").Fit(trainRaw);
        var item = Synthetic.Valid.First(r => Synthetic.Items.Contains(r.ItemId)).ItemId;
        var unseen = keyMap.Transform(ml.Data.LoadFromEnumerable(new[] { new CoraInput { UserId = 987_654, ItemId = item, Label = true } }));
        Assert.AreEqual(0u, unseen.GetColumn<uint>("UserId").Single(), "the key map gives an unseen user key 0");
        float viaKey = model.Transform(unseen).GetColumn<float>("Score").Single();
        float viaRaw = model.Transform(ml.Data.LoadFromEnumerable(new[] { new CoraInput { UserId = 987_654, ItemId = item } })).GetColumn<float>("Score").Single();
        Assert.AreEqual(viaRaw, viaKey, 1e-5 * Math.Max(1, Math.Abs(viaRaw)), "key 0 is scored as the raw unseen user is: a cold user");
        var m = ml.Recommendation().Evaluate(model.Transform(unseen), model);
        Assert.AreEqual(1, m.Cold.Rows, "and counted as a cold row");
    }

    [TestMethod]
    public void RecommendRetrievesThenReranksExcludesSeenAndScalesToManyUsers()
    {
        var (ml, model) = Trained.Value;
        int user = Synthetic.Train.Take(600).GroupBy(r => r.UserId).OrderByDescending(g => g.Count()).First().Key;
        var seen = Synthetic.Train.Take(600).Where(r => r.UserId == user).SelectMany(r => r.History.Append(r.ItemId)).ToHashSet();
        var top = model.Recommend(user, k: 5, candidates: 20);
        Assert.AreEqual(5, top.Count);
        Assert.IsFalse(top.Any(r => seen.Contains(r.ItemId)), "items the user was seen with are excluded");
        Assert.IsTrue(top.All(r => r.Title == Synthetic.Items.Title(r.ItemId) && r.UserId == user));
        Assert.IsTrue(top.Zip(top.Skip(1)).All(p => p.First.Score >= p.Second.Score), "best first");
        // The re-rank scores equal Transform's scores for the same rows (the user's remembered history).
        var rows = top.Select(r => new CoraInput { UserId = user, ItemId = r.ItemId, History = model.Model.Users.TryGet(user, out var p) ? p.Liked : Array.Empty<int>() });
        var direct = model.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float>("Score").ToArray();
        for (int i = 0; i < top.Count; i++) Assert.AreEqual(direct[i], top[i].Score, 1e-5, "same score up to batch padding");
        // Seen items come back when asked; a given history replaces the remembered one.
        Assert.IsTrue(model.Recommend(user, k: 20, candidates: 240, excludeSeen: false).Any(r => seen.Contains(r.ItemId)));
        var withHistory = model.Recommend(user, k: 5, history: new[] { 1, 2, 3 }, candidates: 20);
        Assert.IsFalse(withHistory.Any(r => r.ItemId is 1 or 2 or 3));
        // A user the CF stage never saw still gets k items (popularity retrieval, then the model's re-rank).
        Assert.AreEqual(3, model.Recommend(987_654, k: 3).Count);
        // Many users at once, as an IDataView.
        var users = ml.Data.LoadFromEnumerable(new[] { new CoraInput { UserId = user }, new CoraInput { UserId = user + 1 } });
        var many = ml.Data.CreateEnumerable<CoraRecommendation>(model.Recommend(users, k: 4), reuseRowObject: false).ToList();
        Assert.AreEqual(8, many.Count);
        CollectionAssert.AreEqual(new[] { 1, 2, 3, 4, 1, 2, 3, 4 }, many.Select(r => r.Rank).ToArray());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Recommend(user, k: 0));
    }

    [TestMethod]
    public void AnUnknownUsersListShowsTheModelsScoresNotPopularityCounts()
    {
        var ml = new MLContext(seed: 1);
        var o = new CoraTrainer.Options { ItemTitles = Synthetic.Items.Titles.ToDictionary(kv => kv.Key, kv => kv.Value) };
        o.Method = CoraMethod.Mf;
        o.MatrixFactorization = new Microsoft.ML.Cora.CollaborativeFiltering.MatrixFactorizationOptions { EmbeddingDim = 8, MaxEpochs = 3 };
        var mf = ml.Recommendation().Trainers.Cora(o).Fit(ml.Data.LoadFromEnumerable(CoraInput.From(Synthetic.Train.Take(3000))));
        const int unknown = 987_654;
        var top = mf.Recommend(unknown, k: 5);
        Assert.AreEqual(5, top.Count);
        var cold = mf.Model.Cf.ScoreRows(top.Select(r => new Interaction(unknown, r.ItemId, false, 0, true, Array.Empty<int>())).ToList());
        for (int i = 0; i < top.Count; i++)
        {
            Assert.AreEqual(cold[i], top[i].Score, 1e-6, "the MF model's own cold-start score, not a count");
            Assert.AreEqual(cold[i], top[i].CfScore, 1e-6);
            Assert.IsTrue(top[i].Probability < 0.99, $"probability {top[i].Probability}");
        }
        // Retrieval is still by popularity among the training users: the most popular unseen items come first.
        var popularity = mf.Model.Users.Popularity();
        int best = popularity.Where(kv => mf.Model.Items.Contains(kv.Key)).OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).First().Key;
        Assert.IsTrue(top.Any(r => r.ItemId == best), "the most popular item is among them");
    }

    [TestMethod]
    public void NewItemsComeWithTheDataOrAreAddedToALoadedModel()
    {
        var (ml, model) = Trained.Value;
        using var dir = TestPaths.Temp();
        ml.Model.Save(model, null, dir["m.zip"]);
        var loaded = CoraTransformer.Find(new MLContext().Model.LoadCora(dir["m.zip"], out _));
        var row = new CoraInput { UserId = Synthetic.Valid[0].UserId, ItemId = 5000, History = Synthetic.Valid[0].History };
        var view = ml.Data.LoadFromEnumerable(new[] { row });
        var e = Assert.ThrowsExactly<KeyNotFoundException>(() => loaded.Transform(view).GetColumn<float>("Score").ToArray());
        StringAssert.Contains(e.Message, "item(s) 5000 have no title");
        StringAssert.Contains(e.Message, "TitleColumnName");
        StringAssert.Contains(e.Message, "AddItems");
        loaded.AddItems(new Dictionary<int, string> { [5000] = "Film 5000 (Drama)" });
        float added = loaded.Transform(view).GetColumn<float>("Score").Single();
        Assert.IsTrue(float.IsFinite(added));

        // Titles in the data: a model trained with TitleColumnName reads them at training and at scoring.
        var o = Small();
        o.ItemTitles = null; o.TitleColumnName = "Title";
        var withTitles = Synthetic.Train.Take(300).Select(r => new CoraInput { UserId = r.UserId, ItemId = r.ItemId, Label = r.Label, History = r.History, Title = Synthetic.Items.Title(r.ItemId) }).ToList();
        var titled = new MLContext(seed: 1).Recommendation().Trainers.Cora(o).Fit(ml.Data.LoadFromEnumerable(withTitles));
        var fresh = new CoraInput { UserId = row.UserId, ItemId = 6000, History = Array.Empty<int>(), Title = "Film 6000 (Comedy)" };
        Assert.IsTrue(float.IsFinite(titled.Transform(ml.Data.LoadFromEnumerable(new[] { fresh })).GetColumn<float>("Score").Single()));
        Assert.AreEqual("Film 6000 (Comedy)", titled.Model.Items.Title(6000));
    }

    [TestMethod]
    public void EvaluateTakesAnyChainAndMfNeedsNoTitles()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(CoraInput.From(Synthetic.Train));
        var test = ml.Data.LoadFromEnumerable(CoraInput.From(Synthetic.Valid));
        var mfOptions = new CoraTrainer.Options();   // MF with its defaults; no LLM, no titles
        mfOptions.Method = CoraMethod.Mf;
        var pipeline = ml.Transforms.CopyColumns("Copy", "ItemId").Append(ml.Recommendation().Trainers.Cora(mfOptions));
        var chain = pipeline.Fit(train);
        var scored = chain.Transform(test);
        var m = ml.Recommendation().Evaluate(scored, chain);
        var ours = ml.BinaryClassification.Evaluate(scored);
        Assert.AreEqual(ours.AreaUnderRocCurve, m.Overall.Auc, 1e-9);
        Assert.AreEqual(ours.LogLoss, m.Overall.LogLoss, 1e-4, "bits, ML.NET's unit");
        Assert.AreEqual(m.Overall.LogLossNats, m.Overall.LogLoss * Math.Log(2), 1e-12);
        Assert.AreEqual(m.Overall.Rows, m.Warm.Rows + m.Cold.Rows);
        Assert.IsTrue(m.Overall.Auc > 0.6, $"MF learns the synthetic factors (AUC {m.Overall.Auc})");
    }

    [TestMethod]
    public void EveryOptionIsCheckedWhenTheTrainerIsCreated()
    {
        var ml = new MLContext();
        void Expect(Action<CoraTrainer.Options> change, string text)
        {
            var o = Small();
            change(o);
            var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Recommendation().Trainers.Cora(o));
            StringAssert.Contains(e.Message, text);
        }
        Expect(o => o.Epochs = 0, "Training.Epochs: 0 is out of range");
        Expect(o => o.LearningRate = double.NaN, "Training.LearningRate: NaN is not a finite number");
        Expect(o => o.BatchSize = -1, "Training.BatchSize");
        Expect(o => o.ValidateEvery = 0, "Training.ValidateEvery");
        Expect(o => o.Generator = new QueryGeneratorOptions { Hidden = 100, Heads = 8 }, "Model.QueryGenerator.Hidden: 100 must be divisible");
        Expect(o => o.Model = o.Model with { Rank = 0 }, "Model.Rank");
        Expect(o => o.Model = o.Model with { TargetModules = new[] { "q", "z" } }, "'z' is not a projection");
        Expect(o => o.MatrixFactorization = new MatrixFactorizationOptions { EmbeddingDim = 0 }, "MatrixFactorization.EmbeddingDim");
        Expect(o => o.Device = "gpu", "Device: unknown device 'gpu'");
        Expect(o => o.LlmDtype = "int8", "LlmDtype: unknown LLM dtype");
        Expect(o => o.LlmPath = "/nowhere/model.bin", "LlmPath: '/nowhere/model.bin' does not exist");
        Expect(o => { o.ItemTitles = null; }, "Cora needs the item catalog");
        // Method and Seed set in the tree are read through the shortcuts; a shortcut overrides the tree whatever the order.
        var kept = new CoraTrainer.Options { Model = new CoraModelOptions { Method = CoraMethod.Collm, Seed = 77 } };
        Assert.AreEqual(CoraMethod.Collm, kept.Method);
        Assert.AreEqual(77, kept.Seed);
        kept.Seed = 5;
        Assert.AreEqual(5, kept.EffectiveTraining.Seed);
        Assert.AreEqual(5, kept.EffectiveMatrixFactorization.Seed);
        Assert.AreEqual(5, kept.EffectiveModel.Seed);
        var shortcutFirst = new CoraTrainer.Options { MaxSteps = 5, Training = new TrainingOptions { BatchSize = 4 } };
        Assert.AreEqual((5, 4), (shortcutFirst.EffectiveTraining.MaxSteps, shortcutFirst.EffectiveTraining.BatchSize), "a shortcut set before its tree survives");
        var methodFirst = new CoraTrainer.Options { Method = CoraMethod.Collm, Model = new CoraModelOptions { Rank = 8 } };
        Assert.AreEqual((CoraMethod.Collm, 8), (methodFirst.EffectiveModel.Method, methodFirst.EffectiveModel.Rank));
        var inPlace = new CoraTrainer.Options();
        inPlace.Training.BatchSize = 4;                               // ML.NET's "set a field" style
        inPlace.Model.QueryGenerator.NumLayers = 3;
        Assert.AreEqual(4, inPlace.EffectiveTraining.BatchSize);
        Assert.AreEqual(3, inPlace.EffectiveModel.QueryGenerator.NumLayers);
        Assert.AreEqual(CoraDefaults.GeneratorLayers, QueryGeneratorOptions.Paper.NumLayers, "the preset is not changed through an instance");
        Assert.AreEqual(CoraDefaults.ScoringBatchSize, new CoraTrainer.Options().ScoringBatchSize);
        Assert.AreEqual(new TrainingOptions().ScoringBatchSize, new CoraTrainer.Options().ScoringBatchSize, "one default, one place");
    }

    [TestMethod]
    public void TypedProgressReportsEveryStep()
    {
        var ml = new MLContext(seed: 1);
        var steps = new List<TrainingProgress>();
        var o = Small();
        o.MaxSteps = 4;
        o.Progress = new Collect(steps);
        ml.Recommendation().Trainers.Cora(o).Fit(ml.Data.LoadFromEnumerable(CoraInput.From(Synthetic.Train.Take(300))));
        CollectionAssert.AreEqual(new[] { 1, 2, 3, 4 }, steps.Select(s => s.Step).ToArray());
        Assert.IsTrue(steps.All(s => s.TotalSteps == 4 && double.IsFinite(s.Loss) && s.RowsPerSecond > 0));
    }

    private sealed class Collect : IProgress<TrainingProgress>
    {
        private readonly List<TrainingProgress> _list;
        public Collect(List<TrainingProgress> list) => _list = list;
        public void Report(TrainingProgress value) => _list.Add(value);
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void MlNetFactorMatricesInEitherOrientationGiveTheSameCfScores(bool usersAreRows)
    {
        // An MF trained here plays the ML.NET model: its factors are laid out as MatrixFactorizationModelParameters exposes them.
        using var mf = Synthetic.SmallMf();
        var users = mf.Users.Ids.ToArray();
        var items = mf.Items.Ids.ToArray();
        // Key order differs from id order (MapValueToKey numbers values as it first meets them).
        var userKeys = users.Reverse().ToArray();
        var itemKeys = items.OrderBy(i => (i * 7919) % 101).ToArray();
        float[] Factors(IEnumerable<long> ids, bool user) => ids.SelectMany(id =>
        {
            using var e = user ? mf.UserEmbeddings(new[] { new Interaction((int)id, 0, false, 0, true, Array.Empty<int>()) }) : mf.ItemEmbeddings(new[] { id });
            return e.data<float>().ToArray();
        }).ToArray();
        var (left, leftKeys, right, rightKeys) = usersAreRows
            ? (Factors(userKeys, true), userKeys, Factors(itemKeys, false), itemKeys)
            : (Factors(itemKeys, false), itemKeys, Factors(userKeys, true), userKeys);
        using var cf = MatrixFactorization.FromMlNetFactors(left, leftKeys, right, rightKeys, mf.EmbeddingDim, usersAreRows);
        var rows = Synthetic.Valid.Take(50).ToList();
        CollectionAssert.AreEqual(mf.ScoreRows(rows), cf.ScoreRows(rows));
        var e2 = Assert.ThrowsExactly<ArgumentException>(() => MatrixFactorization.FromMlNetFactors(left, leftKeys.Skip(1).ToArray(), right, rightKeys, mf.EmbeddingDim, usersAreRows));
        StringAssert.Contains(e2.Message, "KeyValues of the matrix row index column");
    }
}
